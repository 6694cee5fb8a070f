#!/usr/bin/perl

# Users API (issue 3): PUT (create/replace), PATCH (partial, null removes),
# GET (with devices and preferences), DELETE (erase everything of a user);
# every validation rule of the user fields.

use strict;
use warnings;

use Test::More;
use Herald::Test;

my $t = Herald::Test->new;
$t->default_conf(workers => 2);
$t->run(env => $t->clock_env);

# ==== PUT / GET / PATCH ====================================================

my $created;
{
    my $r = $t->put_user('crud-1', { email => 'crud@example.com',
        phone => '+33612345678', locale => 'fr-FR',
        timezone => 'Europe/Paris' });
    is($r->{status}, 201, 'PUT new user: 201') or diag(explain $r);
    my $u = $created = $r->{json} && $r->{json}{user} || {};
    is($u->{id}, 'crud-1', 'PUT: id');
    is($u->{email}, 'crud@example.com', 'PUT: email');
    is($u->{phone}, '+33612345678', 'PUT: phone');
    is($u->{locale}, 'fr-FR', 'PUT: locale');
    is($u->{timezone}, 'Europe/Paris', 'PUT: timezone');

    $r = $t->http(GET => '/v1/users/crud-1');
    is($r->{status}, 200, 'GET user: 200') or diag(explain $r);
    my $g = $r->{json} && $r->{json}{user} || {};
    is_deeply($g->{devices}, [], 'GET user: devices is an empty array')
        or diag(explain $g);
    is(ref $g->{preferences}, 'HASH', 'GET user: preferences is an object')
        or diag(explain $g);
    for my $k (qw(id email phone locale timezone created_at shard)) {
        is($g->{$k}, $u->{$k}, "GET user: $k as PUT returned");
    }

    # PUT replaces: fields absent are removed
    $r = $t->put_user('crud-1', { email => 'crud2@example.com' });
    is($r->{status}, 200, 'PUT existing user: 200') or diag(explain $r);
    $u = $r->{json} && $r->{json}{user} || {};
    is($u->{email}, 'crud2@example.com', 'PUT replace: new email');
    ok(!exists $u->{phone}, 'PUT replace: phone removed') or diag(explain $u);
    ok(!exists $u->{locale}, 'PUT replace: locale removed');
    ok(!exists $u->{timezone}, 'PUT replace: timezone removed');
    is($u->{created_at}, $created->{created_at},
        'PUT replace: created_at unchanged');
    $r = $t->http(GET => '/v1/users/crud-1');
    $g = $r->{json} && $r->{json}{user} || {};
    ok(!exists $g->{phone} && !exists $g->{locale} && !exists $g->{timezone},
        'GET after replace: removed fields are gone') or diag(explain $g);

    # PATCH: partial
    $r = $t->http(PATCH => '/v1/users/crud-1',
        body => { phone => '+15551234567', locale => 'en' });
    is($r->{status}, 200, 'PATCH: 200') or diag(explain $r);
    $u = $r->{json} && $r->{json}{user} || {};
    is($u->{email}, 'crud2@example.com', 'PATCH: email kept');
    is($u->{phone}, '+15551234567', 'PATCH: phone added');
    is($u->{locale}, 'en', 'PATCH: locale added');
    is($u->{created_at}, $created->{created_at}, 'PATCH: created_at kept');

    # PATCH: null removes
    $r = $t->http(PATCH => '/v1/users/crud-1', body => { email => undef });
    is($r->{status}, 200, 'PATCH email null: 200') or diag(explain $r);
    $u = $r->{json} && $r->{json}{user} || {};
    ok(!exists $u->{email}, 'PATCH null: email removed') or diag(explain $u);
    is($u->{phone}, '+15551234567', 'PATCH null: phone kept');
    $r = $t->http(GET => '/v1/users/crud-1');
    $g = $r->{json} && $r->{json}{user} || {};
    ok(!exists $g->{email}, 'GET after PATCH null: no email')
        or diag(explain $g);
    is($g->{phone}, '+15551234567', 'GET after PATCH null: phone');
    is($g->{locale}, 'en', 'GET after PATCH null: locale');

    # PATCH {} changes nothing
    $r = $t->http(PATCH => '/v1/users/crud-1', body => {});
    is($r->{status}, 200, 'PATCH {}: 200') or diag(explain $r);
    is($r->{json} && $r->{json}{user}{phone}, '+15551234567',
        'PATCH {}: phone kept');

    $r = $t->http(PATCH => '/v1/users/crud-nobody',
        body => { email => 'a@example.com' });
    $t->api_error($r, 404, 'not_found', undef, 'PATCH unknown user');
    $r = $t->http(GET => '/v1/users/crud-1', auth => undef);
    is($r->{status}, 401, 'GET user without auth: 401');

    $r = $t->http(PATCH => '/v1/users/crud-1',
        body => { email => 'no-at-sign' });
    $t->api_error($r, 400, 'invalid_field', 'email', 'PATCH invalid email');
    $r = $t->http(PATCH => '/v1/users/crud-1', body => { shoe => 42 });
    $t->api_error($r, 400, 'invalid_field', 'shoe', 'PATCH unknown field');

    $r = $t->http(DELETE => '/v1/users/crud-nobody');
    $t->api_error($r, 404, 'not_found', undef, 'DELETE unknown user');
}

# ==== GET includes devices and preferences =================================

{
    $t->put_user('withdev-1', { email => 'wd@example.com' });
    my $tok = Herald::Test::ios_token('withdev-1');
    my $r = $t->add_device('withdev-1', { platform => 'ios', token => $tok });
    is($r->{status}, 201, 'withdev: device registered') or diag(explain $r);
    my $did = $r->{json} && $r->{json}{device} && $r->{json}{device}{id};
    $r = $t->http(PUT => '/v1/users/withdev-1/preferences',
        body => { channels => { sms => JSON::PP::false() } });
    is($r->{status}, 200, 'withdev: preferences PUT') or diag(explain $r);

    $r = $t->http(GET => '/v1/users/withdev-1');
    my $g = $r->{json} && $r->{json}{user} || {};
    my @dev = @{ref $g->{devices} eq 'ARRAY' ? $g->{devices} : []};
    is(scalar @dev, 1, 'GET user: one device') or diag(explain $g);
    is($dev[0] && $dev[0]{id}, $did, 'GET user: device id');
    is($dev[0] && $dev[0]{platform}, 'ios', 'GET user: device platform');
    is($dev[0] && $dev[0]{token}, $tok, 'GET user: device token');
    ok($g->{preferences} && $g->{preferences}{channels}
        && defined $g->{preferences}{channels}{sms}
        && !$g->{preferences}{channels}{sms},
        'GET user: preferences.channels.sms is false') or diag(explain $g);

    # PUT replaces the contact fields only: devices and preferences stay
    $r = $t->put_user('withdev-1', { email => 'wd2@example.com' });
    $r = $t->http(GET => '/v1/users/withdev-1');
    $g = $r->{json} && $r->{json}{user} || {};
    is(scalar @{$g->{devices} // []}, 1, 'PUT replace keeps devices')
        or diag(explain $g);
    ok($g->{preferences} && $g->{preferences}{channels}
        && defined $g->{preferences}{channels}{sms}
        && !$g->{preferences}{channels}{sms},
        'PUT replace keeps preferences') or diag(explain $g);
}

# ==== validation ===========================================================

my $n = 0;
sub bad_user
{
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my ($fields, $field, $name) = @_;
    my $r = $t->put_user('val-' . ++$n, $fields);
    $t->api_error($r, 400, 'invalid_field', $field, $name);
    my $g = $t->http(GET => "/v1/users/val-$n");
    is($g->{status}, 404, "$name: nothing stored") or diag(explain $g);
}
sub good_user
{
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my ($fields, $name) = @_;
    my $r = $t->put_user('val-' . ++$n, $fields);
    is($r->{status}, 201, "$name: accepted (201)") or diag(explain $r);
    my ($k) = keys %$fields;
    is($r->{json} && $r->{json}{user}{$k}, $fields->{$k}, "$name: stored");
}

# user_id (in the path)
{
    my $r = $t->put_user('bad!id', { email => 'a@example.com' });
    $t->api_error($r, 400, 'invalid_field', 'user_id', 'user_id with "!"');
    $r = $t->put_user('has%20space', { email => 'a@example.com' });
    $t->api_error($r, 400, 'invalid_field', 'user_id', 'user_id with a space');
    $r = $t->put_user('a%2Fb', { email => 'a@example.com' });
    $t->api_error($r, 400, 'invalid_field', 'user_id', 'user_id with "/"');
    $r = $t->put_user('caf%C3%A9', { email => 'a@example.com' });
    $t->api_error($r, 400, 'invalid_field', 'user_id', 'user_id non-ASCII');
    $r = $t->put_user('x' x 129, { email => 'a@example.com' });
    $t->api_error($r, 400, 'invalid_field', 'user_id', 'user_id 129 chars');
    $r = $t->put_user('x' x 128, { email => 'a@example.com' });
    is($r->{status}, 201, 'user_id 128 chars: 201') or diag(explain $r);
    $r = $t->put_user('Az09._:@-', { email => 'a@example.com' });
    is($r->{status}, 201, 'user_id with every allowed punctuation: 201')
        or diag(explain $r);
    $r = $t->http(GET => '/v1/users/bad!id');
    $t->api_error($r, 400, 'invalid_field', 'user_id', 'GET bad user_id');
}

# email
{
    bad_user({ email => 'nobody.example.com' }, 'email', 'email without @');
    bad_user({ email => 'a@b@example.com' }, 'email', 'email with two @');
    bad_user({ email => 'user@localhost' }, 'email',
        'email without a dot in the domain');
    bad_user({ email => 'us er@example.com' }, 'email', 'email with a space');
    bad_user({ email => "victim\@example.com\r\nBcc: all\@example.com" },
        'email', 'email with CR LF (header injection)');
    bad_user({ email => "victim\@example.com\nBcc: x\@example.com" },
        'email', 'email with LF');
    bad_user({ email => "a\tb\@example.com" }, 'email', 'email with a tab');
    bad_user({ email => '@example.com' }, 'email', 'email, empty local part');
    bad_user({ email => 'user@' }, 'email', 'email, empty domain');
    bad_user({ email => '<a@example.com>' }, 'email', 'email with <>');
    bad_user({ email => 'a,b@example.com' }, 'email', 'email with a comma');
    bad_user({ email => 'a;b@example.com' }, 'email', 'email with ;');
    bad_user({ email => '' }, 'email', 'email empty');
    bad_user({ email => 5 }, 'email', 'email not a string');
    my $dom = join('.', 'b' x 63, 'c' x 63, 'd' x 57, 'com');
    my $e254 = ('a' x 64) . '@' . $dom;
    is(length $e254, 254, 'the 254-char address is 254 chars');
    good_user({ email => $e254 }, 'email of 254 chars');
    bad_user({ email => ('a' x 64) . '@d' . $dom }, 'email',
        'email of 255 chars');
    good_user({ email => 'first.last+tag@sub.example.co.uk' },
        'email with + and subdomains');
}

# phone
{
    bad_user({ phone => '15551234567' }, 'phone', 'phone without +');
    bad_user({ phone => '+1555abc4567' }, 'phone', 'phone with letters');
    bad_user({ phone => '+1234567' }, 'phone', 'phone of 7 digits');
    good_user({ phone => '+12345678' }, 'phone of 8 digits');
    bad_user({ phone => '+1234567890123456' }, 'phone', 'phone of 16 digits');
    good_user({ phone => '+123456789012345' }, 'phone of 15 digits');
    bad_user({ phone => '+0155512345' }, 'phone', 'phone with a leading 0');
    bad_user({ phone => '+1 555 123 4567' }, 'phone', 'phone with spaces');
    bad_user({ phone => '+' }, 'phone', 'phone "+" alone');
    bad_user({ phone => 15551234567 }, 'phone', 'phone as a number');
}

# locale
{
    good_user({ locale => 'en' }, 'locale en');
    good_user({ locale => 'en-US' }, 'locale en-US');
    good_user({ locale => 'zh-Hant-TW' }, 'locale zh-Hant-TW');
    good_user({ locale => 'fil' }, 'locale fil (3 letters)');
    bad_user({ locale => 'e' }, 'locale', 'locale of one letter');
    bad_user({ locale => 'english' }, 'locale', 'locale of 7 letters');
    bad_user({ locale => 'en_US' }, 'locale', 'locale with _');
    bad_user({ locale => 'en-' }, 'locale', 'locale with an empty subtag');
    bad_user({ locale => 'en-x' }, 'locale', 'locale with a 1-char subtag');
    bad_user({ locale => 'en-abcdefghi' }, 'locale',
        'locale with a 9-char subtag');
    bad_user({ locale => '12' }, 'locale', 'locale of digits');
    bad_user({ locale => 'en US' }, 'locale', 'locale with a space');
}

# timezone
{
    good_user({ timezone => 'UTC' }, 'timezone UTC');
    good_user({ timezone => 'America/Argentina/Buenos_Aires' },
        'timezone America/Argentina/Buenos_Aires');
    good_user({ timezone => 'Etc/GMT+5' }, 'timezone Etc/GMT+5');
    good_user({ timezone => 'America/Port-au-Prince' },
        'timezone America/Port-au-Prince');
    bad_user({ timezone => 'Europe/Par is' }, 'timezone',
        'timezone with a space');
    bad_user({ timezone => '../../etc/passwd' }, 'timezone',
        'timezone with dots (path traversal)');
    bad_user({ timezone => 'Europe\\Paris' }, 'timezone',
        'timezone with a backslash');
    bad_user({ timezone => 'Europe/Paris;x' }, 'timezone', 'timezone with ;');
    bad_user({ timezone => 'A' x 65 }, 'timezone', 'timezone of 65 chars');
    good_user({ timezone => 'A/' . ('b' x 62) }, 'timezone of 64 chars');
}

# unknown fields, non-object bodies
{
    bad_user({ email => 'a@example.com', nickname => 'x' }, 'nickname',
        'unknown field');
    bad_user({ id => 'other' }, 'id', 'field "id" is not settable');
    bad_user({ shard => 1 }, 'shard', 'field "shard" is not settable');
    bad_user({ devices => [] }, 'devices', 'field "devices" is not settable');
    for my $body ('[]', '"a@example.com"', '42', 'null', 'true') {
        my $r = $t->http(PUT => '/v1/users/val-body',
            body => $body, headers => { 'Content-Type' => 'application/json' });
        $t->api_error($r, 400, 'invalid_json', undef, "PUT body $body");
    }
    my $r = $t->http(PUT => '/v1/users/val-body', body => '{"email":');
    $t->api_error($r, 400, 'invalid_json', undef, 'PUT truncated JSON');
    $r = $t->http(PUT => '/v1/users/val-body',
        body => '{"email":"a@example.com","email":"b@example.com"}');
    is($r->{status}, 400, 'PUT with a duplicated key: 400') or diag(explain $r);
    $r = $t->http(PATCH => '/v1/users/crud-1', body => '[]');
    $t->api_error($r, 400, 'invalid_json', undef, 'PATCH body []');
    $r = $t->http(GET => '/v1/users/val-body');
    is($r->{status}, 404, 'none of the bad bodies created the user');
}

# ==== DELETE: erase a user =================================================

{
    my $uid = 'erase-1';
    my $r = $t->put_user($uid, { email => 'erase@example.com',
        phone => '+15550001111' });
    is($r->{status}, 201, 'erase: user created') or diag(explain $r);
    $r = $t->add_device($uid, { platform => 'ios',
        token => Herald::Test::ios_token($uid) });
    is($r->{status}, 201, 'erase: ios device') or diag(explain $r);
    my $dev1 = $r->{json} && $r->{json}{device} && $r->{json}{device}{id};
    $r = $t->add_device($uid, Herald::Test::web_device($uid));
    is($r->{status}, 201, 'erase: web device') or diag(explain $r);
    $r = $t->http(PUT => "/v1/users/$uid/preferences",
        body => { channels => { web => JSON::PP::false() } });
    is($r->{status}, 200, 'erase: preferences') or diag(explain $r);

    # a control user whose notification is due at the same time
    $t->put_user('erase-control', { email => 'control@example.com' });

    my @ids;
    for my $i (1 .. 2) {
        $r = $t->send_note({ user_id => $uid, channels => ['email'],
            title => "now $i", body => 'now' },
            headers => { 'Idempotency-Key' => "erase-key-$i" });
        is($r->{status}, 202, "erase: immediate notification $i")
            or diag(explain $r);
        push @ids, $r->{json}{id} if $r->{json} && $r->{json}{id};
    }
    my $at = Herald::Test::rfc3339($t->herald_now + 60);
    my @sched;
    for my $i (1 .. 2) {
        $r = $t->send_note({ user_id => $uid, channels => ['email', 'sms'],
            title => "later $i", body => 'later', send_at => $at });
        is($r->{status}, 202, "erase: scheduled notification $i")
            or diag(explain $r);
        is_deeply([$t->delivery_statuses($r->{json})],
            ['scheduled', 'scheduled'], "erase: scheduled $i is scheduled")
            or diag(explain $r);
        push @sched, $r->{json}{id} if $r->{json} && $r->{json}{id};
    }
    push @ids, @sched;
    $r = $t->send_note({ user_id => 'erase-control', channels => ['email'],
        title => 'control', body => 'control', send_at => $at });
    is($r->{status}, 202, 'erase: control notification') or diag(explain $r);
    my $control = $r->{json} && $r->{json}{id} // 'none';

    # the immediate ones are delivered before the erase
    for my $id (@ids[0, 1]) {
        my @l = $t->wait_deliveries($id, 1);
        is(scalar @l, 1, "erase: $id delivered before the erase");
    }
    my $before = grep { ($_->{user_id} // '') eq $uid } $t->deliveries;
    is($before, 2, 'erase: two lines in deliveries.log before the erase');

    $r = $t->http(DELETE => "/v1/users/$uid");
    is($r->{status}, 200, 'DELETE user: 200') or diag(explain $r);
    my $j = $r->{json} // {};
    ok($j->{deleted} && JSON::PP::is_bool($j->{deleted}),
        'DELETE: "deleted": true') or diag(explain $j);
    is($j->{user_id}, $uid, 'DELETE: user_id');
    is($j->{notifications}, 4, 'DELETE: 4 notifications erased');
    is($j->{deliveries_cancelled}, 4,
        'DELETE: 4 pending deliveries cancelled (2 scheduled x email+sms)');

    $r = $t->http(GET => "/v1/users/$uid");
    $t->api_error($r, 404, 'not_found', undef, 'GET erased user');
    for my $id (@ids) {
        $r = $t->http(GET => "/v1/notifications/$id");
        $t->api_error($r, 404, 'not_found', undef,
            "GET notification $id of the erased user");
    }
    $r = $t->http(GET => "/v1/users/$uid/devices");
    $t->api_error($r, 404, 'not_found', undef, 'GET devices of erased user');
    $r = $t->http(DELETE => "/v1/users/$uid/devices/" . ($dev1 // 'x'));
    is($r->{status}, 404, 'DELETE device of erased user: 404');
    $r = $t->http(GET => "/v1/users/$uid/preferences");
    is($r->{status}, 404, 'GET preferences of erased user: 404');
    $r = $t->http(DELETE => "/v1/users/$uid");
    $t->api_error($r, 404, 'not_found', undef, 'DELETE erased user again');

    # past send_at: the control is delivered, nothing of the erased user
    $t->clock_advance(120_000);
    my @c = $t->wait_deliveries($control, 1, 15);
    is(scalar @c, 1, 'erase: control notification delivered after send_at');
    sleep 1;
    my $after = grep { ($_->{user_id} // '') eq $uid } $t->deliveries;
    is($after, 2, 'erase: no delivery of the erased user after send_at')
        or diag($t->read_file('deliveries.log'));
    ok(!grep({ my $id = $_; grep { ($_->{notification_id} // '') eq $id }
            $t->deliveries } @sched),
        'erase: the scheduled notifications never reached the sink');

    # a new user with the same id starts empty
    $r = $t->put_user($uid, { email => 'erase@example.com' });
    is($r->{status}, 201, 'PUT after erase: 201 (a new user)')
        or diag(explain $r);
    $r = $t->http(GET => "/v1/users/$uid");
    is_deeply($r->{json} && $r->{json}{user}{devices}, [],
        'new user with the erased id: no devices') or diag(explain $r);
    my $p = $r->{json} && $r->{json}{user}{preferences} || {};
    ok(!($p->{channels} && defined $p->{channels}{web}
         && !$p->{channels}{web}),
        'new user with the erased id: the old web opt-out is gone')
        or diag(explain $p);
    $r = $t->http(GET => "/v1/users/$uid/notifications");
    is($r->{status}, 200, 'notifications list of the new user: 200');
    is_deeply($r->{json} && $r->{json}{notifications}, [],
        'new user with the erased id: no notifications') or diag(explain $r);
    # idempotency keys were erased too
    $r = $t->send_note({ user_id => $uid, channels => ['email'],
        title => 'again', body => 'again' },
        headers => { 'Idempotency-Key' => 'erase-key-1' });
    is($r->{status}, 202, 'old Idempotency-Key after erase: 202 (new)')
        or diag(explain $r);
    ok($r->{json} && !$r->{json}{duplicate}, 'old key after erase: not duplicate');
    ok($r->{json} && $r->{json}{id} && !grep({ $_ eq $r->{json}{id} } @ids),
        'old key after erase: a new id');
}

$t->stop;
ok(!$t->{stop_timed_out}, 'herald stopped on SIGTERM');
done_testing();
