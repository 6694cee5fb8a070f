#!/usr/bin/perl

# Devices API (issue 3): register ios/android/web (201), re-register
# (200, same id), list, delete, a token moving to another user (same shard
# and across shards), every device validation rule.

use strict;
use warnings;

use Test::More;
use MIME::Base64 qw(encode_base64 decode_base64);
use Herald::Test;

my $t = Herald::Test->new;
$t->default_conf(workers => 2);
$t->run;

sub b64url
{
    my $s = encode_base64($_[0], '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}
sub unb64url
{
    my $s = $_[0];
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return decode_base64($s);
}

my $P256DH = $Herald::Test::WEB_P256DH;
my $AUTH   = $Herald::Test::WEB_AUTH;
is(length unb64url($P256DH), 65, 'fixture: p256dh decodes to 65 bytes');
is(length unb64url($AUTH), 16, 'fixture: auth decodes to 16 bytes');

sub devices_of
{
    my ($uid) = @_;
    my $r = $t->http(GET => "/v1/users/$uid/devices");
    return undef unless $r->{status} == 200 && $r->{json}
        && ref $r->{json}{devices} eq 'ARRAY';
    return $r->{json}{devices};
}

sub has_token
{
    my ($uid, $token) = @_;
    my $d = devices_of($uid) or return 0;
    return scalar grep { ($_->{token} // '') eq $token } @$d;
}

my $U = 'dev-1';
my $r = $t->put_user($U, { email => 'dev1@example.com' });
is($r->{status}, 201, 'user created') or diag(explain $r);

# ==== register, re-register, list, delete ==================================

my (%id, %tok);
{
    $tok{ios} = Herald::Test::ios_token('dev-ios-1');
    $r = $t->add_device($U, { platform => 'ios', token => $tok{ios},
        app => 'com.example.App', sandbox => JSON::PP::true() });
    is($r->{status}, 201, 'register ios: 201') or diag(explain $r);
    my $d = $r->{json} && $r->{json}{device} || {};
    ok(defined $d->{id} && length $d->{id}, 'ios: device id');
    $id{ios} = $d->{id} // 'none-ios';
    is($d->{platform}, 'ios', 'ios: platform');
    is($d->{token}, $tok{ios}, 'ios: token');
    is($d->{app}, 'com.example.App', 'ios: app');
    ok(JSON::PP::is_bool($d->{sandbox}) && $d->{sandbox},
        'ios: sandbox true') or diag(explain $d);
    ok(defined $d->{created_at} && defined $d->{updated_at},
        'ios: created_at and updated_at');

    $tok{android} = 'fcm-token:APA91bH' . ('Zq9_-' x 30);
    $r = $t->add_device($U, { platform => 'android',
        token => $tok{android} });
    is($r->{status}, 201, 'register android: 201') or diag(explain $r);
    $d = $r->{json} && $r->{json}{device} || {};
    $id{android} = $d->{id} // 'none-android';
    is($d->{platform}, 'android', 'android: platform');
    is($d->{token}, $tok{android}, 'android: token');
    ok(!exists $d->{app}, 'android: no app given, none shown')
        or diag(explain $d);

    my $web = Herald::Test::web_device('dev-1');
    $tok{web} = $web->{subscription}{endpoint};
    $r = $t->add_device($U, $web);
    is($r->{status}, 201, 'register web: 201') or diag(explain $r);
    $d = $r->{json} && $r->{json}{device} || {};
    $id{web} = $d->{id} // 'none-web';
    is($d->{platform}, 'web', 'web: platform');
    is($d->{token}, $tok{web}, 'web: token is the endpoint');
    is_deeply($d->{subscription}, $web->{subscription},
        'web: subscription echoed') or diag(explain $d);

    my %seen;
    $seen{$_}++ for values %id;
    is(scalar keys %seen, 3, 'three distinct device ids');

    # re-register: idempotent
    $r = $t->add_device($U, { platform => 'ios', token => $tok{ios},
        app => 'com.example.App', sandbox => JSON::PP::true() });
    is($r->{status}, 200, 're-register ios: 200') or diag(explain $r);
    is($r->{json} && $r->{json}{device}{id}, $id{ios}, 're-register ios: same id');
    $r = $t->add_device($U, { platform => 'android',
        token => $tok{android} });
    is($r->{status}, 200, 're-register android: 200') or diag(explain $r);
    is($r->{json} && $r->{json}{device}{id}, $id{android},
        're-register android: same id');
    $r = $t->add_device($U, $web);
    is($r->{status}, 200, 're-register web: 200') or diag(explain $r);
    is($r->{json} && $r->{json}{device}{id}, $id{web},
        're-register web: same id');

    my $list = devices_of($U) // [];
    is(scalar @$list, 3, 'list: three devices') or diag(explain $list);
    is_deeply([sort map { $_->{id} // '' } @$list], [sort values %id],
        'list: the registered ids');
    my ($li) = grep { ($_->{id} // '') eq $id{ios} } @$list;
    is($li && $li->{token}, $tok{ios}, 'list: ios token');
    is($li && $li->{app}, 'com.example.App', 'list: ios app');

    $r = $t->http(DELETE => "/v1/users/$U/devices/$id{android}");
    is($r->{status}, 200, 'delete android: 200') or diag(explain $r);
    ok($r->{json} && $r->{json}{deleted}, 'delete: "deleted": true')
        or diag(explain $r);
    $r = $t->http(DELETE => "/v1/users/$U/devices/$id{android}");
    $t->api_error($r, 404, 'not_found', undef, 'delete android again');
    $r = $t->http(DELETE => "/v1/users/$U/devices/d-no-such-device");
    $t->api_error($r, 404, 'not_found', undef, 'delete unknown device id');
    $list = devices_of($U) // [];
    is_deeply([sort map { $_->{id} // '' } @$list],
        [sort @id{qw(ios web)}], 'list after delete: ios and web');

    # a device id of another user cannot be deleted through this user
    $t->put_user('dev-other', { email => 'other@example.com' });
    $r = $t->http(DELETE => "/v1/users/dev-other/devices/$id{ios}");
    $t->api_error($r, 404, 'not_found', undef,
        "delete $U\'s device through another user");
    ok(has_token($U, $tok{ios}), 'the device is still there');

    # registering again after delete creates it anew
    $r = $t->add_device($U, { platform => 'android',
        token => $tok{android} });
    is($r->{status}, 201, 're-register after delete: 201') or diag(explain $r);

    $r = $t->add_device('dev-nobody', { platform => 'ios',
        token => Herald::Test::ios_token('nobody') });
    $t->api_error($r, 404, 'not_found', 'user_id', 'device for unknown user');
    $r = $t->http(GET => '/v1/users/dev-nobody/devices');
    $t->api_error($r, 404, 'not_found', undef, 'list devices of unknown user');
}

# ==== a token moves to another user ========================================

{
    my %by_shard;
    my @users;
    for my $i (1 .. 40) {
        my $uid = "mv-$i";
        my $res = $t->put_user($uid, { email => "$uid\@example.com" });
        my $s = $res->{json} && $res->{json}{user}{shard};
        next unless defined $s;
        push @users, [$uid, $s];
        push @{$by_shard{$s}}, $uid;
        last if keys %by_shard >= 2
            && grep({ @$_ >= 2 } values %by_shard);
    }
    my ($pair_shard) = grep { @{$by_shard{$_}} >= 2 } sort keys %by_shard;
    my ($other_shard) = grep { !defined $pair_shard || $_ ne $pair_shard }
        sort keys %by_shard;
    ok(defined $pair_shard && defined $other_shard,
        'found two users on one shard and one on another')
        or diag(explain \%by_shard);
    $pair_shard //= 0;
    $other_shard //= 1;
    my ($a, $b) = @{$by_shard{$pair_shard} // ['mv-a', 'mv-b']};
    my ($c) = @{$by_shard{$other_shard} // ['mv-c']};

    for my $case (['same shard', $a, $b, 'ios'],
                  ['different shards', $a, $c, 'ios'],
                  ['same shard', $a, $b, 'android'],
                  ['different shards', $a, $c, 'android'],
                  ['different shards', $a, $c, 'web'])
    {
        my ($what, $from, $to, $pf) = @$case;
        (my $seed = "move-$pf-$what") =~ s/ /-/g;
        my $dev = $pf eq 'ios' ? { platform => 'ios',
                                   token => Herald::Test::ios_token($seed) }
                : $pf eq 'android' ? { platform => 'android',
                                       token => "fcm:$seed" }
                : Herald::Test::web_device($seed);
        my $token = $pf eq 'web' ? $dev->{subscription}{endpoint}
                                 : $dev->{token};
        my $r1 = $t->add_device($from, $dev);
        is($r1->{status}, 201, "move $pf ($what): registered to $from")
            or diag(explain $r1);
        my $r2 = $t->add_device($to, $dev);
        like($r2->{status}, qr/^20[01]$/,
            "move $pf ($what): registered to $to") or diag(explain $r2);
        ok(has_token($to, $token), "move $pf ($what): in $to\'s list");
        my $gone = $t->wait_for(sub { !has_token($from, $token)
                                      && devices_of($from) }, 10);
        ok($gone, "move $pf ($what): left $from\'s list")
            or diag(explain devices_of($from));
        my $u = $t->http(GET => "/v1/users/$from");
        ok(!grep({ ($_->{token} // '') eq $token }
                @{$u->{json} && $u->{json}{user}{devices} || []}),
            "move $pf ($what): not in GET user $from devices");
        is(has_token($to, $token), 1,
            "move $pf ($what): exactly once in $to\'s list");
    }

    # after the moves $c owns the web device; $a has no web device left
    $r = $t->send_note({ user_id => $a, channels => ['web'], body => 'x' });
    $t->api_error($r, 422, 'no_address', undef,
        'web send to the user whose web device moved away');
    $r = $t->send_note({ user_id => $c, channels => ['web'], body => 'x' });
    is($r->{status}, 202, 'web send to the user the device moved to')
        or diag(explain $r);
}

# ==== validation ===========================================================

my $VU = 'dev-val';
$t->put_user($VU, { email => 'val@example.com' });

sub bad_device
{
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my ($dev, $field, $name) = @_;
    my $before = devices_of($VU) // [];
    my $res = $t->add_device($VU, $dev);
    $t->api_error($res, 400, 'invalid_field', $field, $name);
    my $after = devices_of($VU) // [];
    is(scalar @$after, scalar @$before, "$name: nothing registered");
}
sub good_device
{
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my ($dev, $name) = @_;
    my $res = $t->add_device($VU, $dev);
    is($res->{status}, 201, "$name: 201") or diag(explain $res);
}

my $hex = sub { substr(Herald::Test::ios_token($_[0]) x 4, 0, $_[1]) };
my $web = sub {
    my (%o) = @_;
    return { platform => 'web', subscription => {
        endpoint => $o{endpoint} // 'https://push.example.net/v/' . rand(),
        keys => { p256dh => $o{p256dh} // $P256DH,
                  auth => $o{auth} // $AUTH } } };
};

# platform
bad_device({ platform => 'blackberry', token => $hex->('p', 64) },
    'platform', 'platform blackberry');
bad_device({ platform => 'IOS', token => $hex->('p', 64) },
    'platform', 'platform IOS (case)');
bad_device({ platform => 1, token => $hex->('p', 64) },
    'platform', 'platform not a string');
{
    my $res = $t->add_device($VU, { token => $hex->('p', 64) });
    $t->api_error($res, 400, undef, 'platform', 'platform missing');
}

# ios token
bad_device({ platform => 'ios', token => $hex->('o', 65) }, 'token',
    'ios token of odd length');
bad_device({ platform => 'ios', token => 'g' . $hex->('h', 63) }, 'token',
    'ios token not hex');
bad_device({ platform => 'ios', token => $hex->('s', 14) }, 'token',
    'ios token of 14 chars');
good_device({ platform => 'ios', token => $hex->('s', 16) },
    'ios token of 16 chars');
good_device({ platform => 'ios', token => $hex->('l', 200) },
    'ios token of 200 chars');
bad_device({ platform => 'ios', token => $hex->('l', 202) }, 'token',
    'ios token of 202 chars');
bad_device({ platform => 'ios', token => '' }, 'token', 'ios token empty');
bad_device({ platform => 'ios', token => $hex->('w', 30) . ' '
    . $hex->('w', 32) }, 'token', 'ios token with a space');
bad_device({ platform => 'ios', token => 1234567890123456 }, 'token',
    'ios token not a string');

# android token
bad_device({ platform => 'android', token => '' }, 'token',
    'android token empty');
good_device({ platform => 'android', token => 'A' x 4096 },
    'android token of 4096 chars');
bad_device({ platform => 'android', token => 'B' x 4097 }, 'token',
    'android token of 4097 chars');
bad_device({ platform => 'android', token => "abc\x01def" }, 'token',
    'android token with a control char');
bad_device({ platform => 'android', token => "abc\ndef" }, 'token',
    'android token with a newline');
bad_device({ platform => 'android', token => "abc\x{e9}def" }, 'token',
    'android token with non-ASCII');

# web subscription
bad_device($web->(endpoint => 'http://push.example.net/x'),
    'subscription.endpoint', 'web endpoint http://');
bad_device($web->(endpoint => 'not-a-url'),
    'subscription.endpoint', 'web endpoint not a URL');
bad_device($web->(endpoint => 'ftp://push.example.net/x'),
    'subscription.endpoint', 'web endpoint ftp://');
bad_device($web->(p256dh => b64url("\x04" . ("\x11" x 63))),
    'subscription.keys.p256dh', 'p256dh of 64 bytes');
bad_device($web->(p256dh => b64url("\x04" . ("\x11" x 65))),
    'subscription.keys.p256dh', 'p256dh of 66 bytes');
bad_device($web->(p256dh => b64url("\x05" . substr(unb64url($P256DH), 1))),
    'subscription.keys.p256dh', 'p256dh not starting with 0x04');
bad_device($web->(p256dh => substr($P256DH, 0, 40) . '!*' . substr($P256DH, 42)),
    'subscription.keys.p256dh', 'p256dh not base64url (! and *)');
{
    (my $std = $P256DH) =~ tr{-_}{+/};
    bad_device($web->(p256dh => $std), 'subscription.keys.p256dh',
        'p256dh in standard base64 (+ and /), not base64url');
}
bad_device($web->(auth => b64url('x' x 15)), 'subscription.keys.auth',
    'auth of 15 bytes');
bad_device($web->(auth => b64url('x' x 17)), 'subscription.keys.auth',
    'auth of 17 bytes');
bad_device($web->(auth => 'not base64!'), 'subscription.keys.auth',
    'auth not base64url');
good_device($web->(), 'web with valid keys');

# app
bad_device({ platform => 'ios', token => $hex->('a1', 64), app => 'my app' },
    'app', 'app with a space');
bad_device({ platform => 'ios', token => $hex->('a2', 64), app => 'a/b' },
    'app', 'app with /');
bad_device({ platform => 'ios', token => $hex->('a3', 64), app => '' },
    'app', 'app empty');
bad_device({ platform => 'ios', token => $hex->('a4', 64), app => 'x' x 65 },
    'app', 'app of 65 chars');
good_device({ platform => 'ios', token => $hex->('a5', 64),
    app => 'A-z_0.9' . ('x' x 57) }, 'app of 64 allowed chars');

# other fields
bad_device({ platform => 'ios', token => $hex->('f1', 64), color => 'red' },
    'color', 'unknown device field');
bad_device({ platform => 'ios', token => $hex->('f2', 64), sandbox => 'yes' },
    'sandbox', 'sandbox not a boolean');
{
    my $res = $t->http(POST => "/v1/users/$VU/devices", body => '[]');
    $t->api_error($res, 400, 'invalid_json', undef, 'device body []');
}

$t->stop;
ok(!$t->{stop_timed_out}, 'herald stopped on SIGTERM');
done_testing();
