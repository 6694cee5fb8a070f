#!/usr/bin/perl

# Sending (issue 3): fan-out to every channel and device, explicit channel
# subsets, per-channel content in the provider's lines, priority, every
# send validation error, no_address, the per-user path, the per-user
# listing with cursor paging, and batches.

use strict;
use warnings;

use Test::More;
use Herald::Test;

my $t = Herald::Test->new;
$t->default_conf(workers => 2, extra => <<'EOF');
api_key sendonly {
    secret sendonly-secret;
    scopes send;
}
api_key usersonly {
    secret usersonly-secret;
    scopes users;
}
EOF
$t->run;

my $U = 'send-1';
my (%tok, %dev);
{
    my $r = $t->put_user($U, { email => 'send1@example.com',
        phone => '+15557654321' });
    is($r->{status}, 201, 'user created') or diag(explain $r);
    my @devs = (
        [ios1 => { platform => 'ios', token => Herald::Test::ios_token('s1') }],
        [and1 => { platform => 'android', token => 'fcm:send-1:APA91b-1' }],
        [web1 => Herald::Test::web_device('send-1-a')],
        [web2 => Herald::Test::web_device('send-1-b')],
    );
    for my $d (@devs) {
        my ($name, $body) = @$d;
        $r = $t->add_device($U, $body);
        is($r->{status}, 201, "device $name registered") or diag(explain $r);
        $dev{$name} = $r->{json} && $r->{json}{device}{id} // "none-$name";
        $tok{$name} = $body->{token} // $body->{subscription}{endpoint};
    }
}

# The expected {to => [channel, device_id]} of every delivery of user $U.
my %want = (
    'send1@example.com' => ['email', undef],
    '+15557654321'      => ['sms', undef],
    $tok{ios1}          => ['push', $dev{ios1}],
    $tok{and1}          => ['push', $dev{and1}],
    $tok{web1}          => ['web', $dev{web1}],
    $tok{web2}          => ['web', $dev{web2}],
);

sub accepted
{
    my ($r, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = is($r->{status}, 202, "$name: 202");
    diag(explain $r) unless $ok;
    return $r->{json} // {};
}

# ==== fan-out ==============================================================

{
    my $j = accepted($t->send_note({ user_id => $U, title => 'Fan',
        body => 'out' }), 'shorthand to every channel');
    my $id = $j->{id} // 'none';
    is($j->{status}, 'accepted', 'fan-out: status accepted');
    ok(JSON::PP::is_bool($j->{duplicate}) && !$j->{duplicate},
        'fan-out: "duplicate": false') or diag(explain $j);
    my @d = @{$j->{deliveries} // []};
    is(scalar @d, 6, 'fan-out: 6 deliveries (email, sms, 2 push, 2 web)')
        or diag(explain $j);
    my %seen;
    for my $i (0 .. $#d) {
        my $x = $d[$i];
        my $w = $want{$x->{to} // ''};
        ok($w, "fan-out: delivery $i goes to a known address")
            or diag(explain $x), next;
        $seen{$x->{to}}++;
        is($x->{channel}, $w->[0], "fan-out: delivery $i channel $w->[0]");
        is($x->{device_id}, $w->[1], "fan-out: delivery $i device_id")
            if defined $w->[1];
        is($x->{status}, 'queued', "fan-out: delivery $i queued");
        is($x->{id}, "$id-$i", "fan-out: delivery $i id");
    }
    is(scalar keys %seen, 6, 'fan-out: every address exactly once')
        or diag(explain \%seen);

    my @l = $t->wait_deliveries($id, 6);
    is(scalar @l, 6, 'fan-out: 6 lines in deliveries.log')
        or diag(explain \@l);
    is_deeply([sort map { $_->{to} // '' } @l], [sort keys %want],
        'fan-out: the log lines go to every address');
    ok(!grep({ ($_->{title} // '') ne 'Fan' || ($_->{body} // '') ne 'out' }
            @l), 'fan-out: every line has title and body')
        or diag(explain \@l);
    my %ch;
    $ch{$_->{channel} // '?'}++ for @l;
    is_deeply(\%ch, { email => 1, sms => 1, push => 2, web => 2 },
        'fan-out: lines per channel');

    my $n = $t->wait_notification($id, sub {
        !grep { $_ ne 'delivered' } $t->delivery_statuses($_[0]) });
    is($n && $n->{status}, 'delivered', 'fan-out: notification delivered')
        or diag(explain $n);
    is($n && $n->{priority}, 'normal', 'fan-out: default priority normal');
}

# ==== explicit channels ====================================================

{
    my $j = accepted($t->send_note({ user_id => $U,
        channels => ['email', 'push'], body => 'subset' }), 'email+push');
    my @d = @{$j->{deliveries} // []};
    is_deeply([sort map { $_->{channel} // '' } @d],
        ['email', 'push', 'push'], 'email+push: 1 email and 2 push')
        or diag(explain $j);
    my @l = $t->wait_deliveries($j->{id} // 'none', 3);
    sleep 0.3;
    @l = $t->deliveries_for($j->{id} // 'none');
    is(scalar @l, 3, 'email+push: 3 lines') or diag(explain \@l);
    ok(!grep({ $_->{channel} eq 'sms' || $_->{channel} eq 'web' } @l),
        'email+push: nothing to sms or web');

    $j = accepted($t->send_note({ user_id => $U, channels => ['web'],
        body => 'web only' }), 'web only');
    is_deeply([sort map { $_->{device_id} // '' } @{$j->{deliveries} // []}],
        [sort @dev{qw(web1 web2)}], 'web only: one delivery per web device')
        or diag(explain $j);

    $j = accepted($t->send_note({ user_id => $U,
        channels => ['sms', 'sms'], body => 'twice' }), 'sms listed twice');
    is(scalar @{$j->{deliveries} // []}, 1,
        'a channel listed twice gives one delivery') or diag(explain $j);
}

# ==== per-channel content ==================================================

my %PC = (
    push  => { title => 'PT', body => 'PB', badge => 3,
               data => { deep => 'link' } },
    sms   => { body => 'SB' },
    email => { subject => 'ES', text => 'ET', html => '<p>EH</p>' },
    web   => { title => 'WT', body => 'WB',
               icon => 'https://cdn.example.com/i.png',
               url => 'https://example.com/u' },
);
{
    my $j = accepted($t->send_note({ user_id => $U,
        channels => [qw(push sms email web)], %PC }), 'per-channel content');
    my $id = $j->{id} // 'none';
    my @l = $t->wait_deliveries($id, 6);
    is(scalar @l, 6, 'per-channel: 6 lines') or diag(explain \@l);
    my %markers = (push => 'PB', sms => 'SB', email => 'ES', web => 'WB');
    for my $line (@l) {
        my $c = $line->{channel} // '?';
        my $want = $PC{$c} or next;
        # the part's fields, at the top level of the line or under the
        # channel's name
        my $src = ref $line->{$c} eq 'HASH' ? $line->{$c} : $line;
        for my $k (sort keys %$want) {
            is_deeply($src->{$k}, $want->{$k}, "per-channel $c ($line->{to}): $k")
                or diag(explain $line);
        }
        my $raw = Herald::Test::json_encode($line);
        for my $o (grep { $_ ne $c } keys %markers) {
            unlike($raw, qr/"\Q$markers{$o}\E"/,
                "per-channel $c line carries nothing of $o");
        }
    }

    # shorthand plus one part: the part wins for its channel only
    $j = accepted($t->send_note({ user_id => $U, channels => ['sms', 'email'],
        title => 'T', body => 'B', sms => { body => 'S' } }),
        'shorthand + sms part');
    @l = $t->wait_deliveries($j->{id} // 'none', 2);
    my ($sl) = grep { $_->{channel} eq 'sms' } @l;
    my ($el) = grep { $_->{channel} eq 'email' } @l;
    is($sl && ($sl->{sms} && $sl->{sms}{body} // $sl->{body}), 'S',
        'shorthand + sms part: sms body from the part');
    is($el && $el->{body}, 'B', 'shorthand + sms part: email body shorthand');
    is($el && $el->{title}, 'T', 'shorthand + sms part: email title');

    # only a per-channel part is content enough
    $j = accepted($t->send_note({ user_id => $U, channels => ['sms'],
        sms => { body => 'only part' } }), 'only an sms part');

    # data (string: string) reaches the line
    $j = accepted($t->send_note({ user_id => $U, channels => ['email'],
        body => 'd', data => { order => '42', kind => 'receipt' } }),
        'top-level data');
    @l = $t->wait_deliveries($j->{id} // 'none', 1);
    is_deeply($l[0] && $l[0]{data}, { order => '42', kind => 'receipt' },
        'top-level data in the line') or diag(explain \@l);
}

# ==== priority =============================================================

for my $p (qw(critical high normal low)) {
    my $j = accepted($t->send_note({ user_id => $U, channels => ['email'],
        priority => $p, body => "prio $p" }), "priority $p");
    my $n = $t->notification($j->{id} // 'none');
    is($n && $n->{priority}, $p, "priority $p: shown by GET")
        or diag(explain $n);
    my @l = $t->wait_deliveries($j->{id} // 'none', 1);
    is(scalar @l, 1, "priority $p: delivered");
}

# ==== validation ===========================================================

sub bad_send
{
    my ($body, $code, $field, $name, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = $t->http(POST => $o{path} // '/v1/notifications', body => $body);
    $t->api_error($r, $o{status} // 400, $code, $field, $name);
}

my %ok = (user_id => $U, channels => ['email'], body => 'x');
bad_send({ channels => ['email'], body => 'x' }, 'missing_field',
    'user_id', 'missing user_id');
bad_send({ %ok, user_id => 'bad id!' }, 'invalid_field', 'user_id',
    'user_id with bad characters');
bad_send({ %ok, channels => ['pigeon'] }, 'invalid_field', 'channels',
    'bad channel name');
bad_send({ %ok, channels => ['Email'] }, 'invalid_field', 'channels',
    'channel name with a capital');
bad_send({ %ok, channels => [] }, 'invalid_field', 'channels',
    'empty channels');
bad_send({ %ok, channels => 'email' }, 'invalid_field', 'channels',
    'channels not an array');
bad_send({ %ok, colour => 'red' }, 'invalid_field', 'colour',
    'unknown field');
bad_send({ %ok, body => 42 }, 'invalid_field', 'body', 'body not a string');
bad_send({ %ok, title => ['x'] }, 'invalid_field', 'title',
    'title not a string');
bad_send({ %ok, channels => ['push'], push => { body => 'x', badge => '3' } },
    'invalid_field', 'push.badge', 'badge a string');
bad_send({ %ok, channels => ['push'], push => { body => 'x', badge => 1.5 } },
    'invalid_field', 'push.badge', 'badge not an integer');
bad_send({ %ok, push => { body => 'x', colour => 'red' } },
    'invalid_field', 'push.colour', 'unknown field in push');
bad_send({ %ok, email => { subject => 'x', body => 'y' } },
    'invalid_field', 'email.body', 'email part has no "body"');
bad_send({ %ok, sms => 'text' }, 'invalid_field', 'sms',
    'sms part not an object');
bad_send({ %ok, data => { n => 1 } }, 'invalid_field', 'data',
    'data value not a string');
bad_send({ %ok, data => 'x' }, 'invalid_field', 'data',
    'data not an object');
bad_send({ %ok, ttl => 0 }, 'invalid_field', 'ttl', 'ttl 0');
bad_send({ %ok, ttl => -5 }, 'invalid_field', 'ttl', 'ttl negative');
bad_send({ %ok, ttl => '60' }, 'invalid_field', 'ttl', 'ttl a string');
bad_send({ %ok, ttl => 1.5 }, 'invalid_field', 'ttl', 'ttl not an integer');
bad_send({ %ok, send_at => 'tomorrow' }, 'invalid_field', 'send_at',
    'send_at "tomorrow"');
bad_send({ %ok, send_at => '2030-01-01T10:00:00' }, 'invalid_field',
    'send_at', 'send_at without an offset');
bad_send({ %ok, send_at => '2030-13-01T10:00:00Z' }, 'invalid_field',
    'send_at', 'send_at month 13');
bad_send({ %ok, send_at => '2030-02-30T10:00:00Z' }, 'invalid_field',
    'send_at', 'send_at February 30');
bad_send({ %ok, send_at => '01/02/2030' }, 'invalid_field', 'send_at',
    'send_at 01/02/2030');
bad_send({ %ok, send_at => 1893456000 }, 'invalid_field', 'send_at',
    'send_at a number');
bad_send({ %ok, priority => 'urgent' }, 'invalid_field', 'priority',
    'priority urgent');
bad_send({ %ok, priority => 'HIGH' }, 'invalid_field', 'priority',
    'priority HIGH');
# near misses of each name
for my $p ('hi', 'lowest', 'normal ', 'c', '') {
    bad_send({ %ok, priority => $p }, 'invalid_field', 'priority',
        "priority '$p'");
}
bad_send({ %ok, idempotency_key => 'k' x 256 }, 'invalid_field',
    'idempotency_key', 'idempotency_key of 256 chars');
bad_send({ %ok, idempotency_key => 7 }, 'invalid_field',
    'idempotency_key', 'idempotency_key not a string');
bad_send({ %ok, category => 5 }, 'invalid_field', 'category',
    'category not a string');
bad_send({ user_id => $U, channels => ['email'] }, 'missing_field', undef,
    'no content at all');
bad_send({ user_id => $U, channels => ['email'], title => 'only title' },
    'missing_field', undef, 'a title alone is not content');
bad_send({ %ok, user_id => 'someone-else' }, 'invalid_field', 'user_id',
    'user_id in the body differs from the path',
    path => "/v1/users/$U/notifications");
bad_send({ %ok, user_id => 'send-nobody' }, 'not_found', 'user_id',
    'unknown user', status => 404);
{
    my $r = $t->send_note({ %ok, idempotency_key => 'k' x 255 });
    is($r->{status}, 202, 'idempotency_key of 255 chars: 202')
        or diag(explain $r);
    $r = $t->send_note({ %ok, ttl => 1, send_at =>
        Herald::Test::rfc3339(time - 3600) });
    is($r->{status}, 202, 'send_at in the past and ttl 1 are valid')
        or diag(explain $r);
    $r = $t->send_note({ %ok, send_at => '2020-01-01T10:00:00+02:00' });
    is($r->{status}, 202, 'send_at with a +02:00 offset is valid')
        or diag(explain $r);
    $r = $t->send_note({ %ok, send_at => '2020-01-01T10:00:00.250Z' });
    is($r->{status}, 202, 'send_at with fractional seconds is valid')
        or diag(explain $r);
}

# ==== the body as text =====================================================
# Send bodies are checked and stored as text (src/core/jtext.c), not as a
# jansson tree: whatever jansson would refuse is refused the same way, keys
# compare as they decode, and the content is stored compact.

{
    my $raw = sub {
        my ($body, $path) = @_;
        return $t->http(POST => $path // '/v1/notifications', body => $body);
    };
    my $r = $raw->(qq({"user_id":"$U","channels":["email"],)
        . q("bo\u0064y":"escaped key"}));
    my $j = accepted($r, 'a key written with an escape');
    my @l = $t->wait_deliveries($j->{id} // 'none', 1);
    is($l[0] && $l[0]{body}, 'escaped key', 'the escaped key is "body"');

    $r = $raw->(qq({"user_id":"$U","body":"a","body":"b"}));
    $t->api_error($r, 400, 'invalid_json', undef, 'a key given twice');
    $r = $raw->(qq({"user_id":"$U","body":"a","bo\\u0064y":"b"}));
    $t->api_error($r, 400, 'invalid_json', undef,
        'a key given twice, once escaped');
    $r = $raw->(qq({"user_id":"$U","body":"a","push":{"data":{"k":"1","k":"2"}}}));
    $t->api_error($r, 400, 'invalid_json', undef, 'a nested key given twice');
    $r = $raw->(qq({"user_id":"$U","body":"a"} x));
    $t->api_error($r, 400, 'invalid_json', undef, 'text after the object');
    $r = $raw->(qq({"user_id":"$U","body":"a","ttl":99999999999999999999}));
    $t->api_error($r, 400, 'invalid_json', undef,
        'an integer beyond 64 bits');
    $r = $raw->(qq({"user_id":"$U","body":"a","ttl":1e400}));
    $t->api_error($r, 400, 'invalid_json', undef, 'a real beyond a double');
    $r = $raw->(qq({"user_id":"$U","body":"a\\u0000b"}));
    $t->api_error($r, 400, 'invalid_json', undef, 'an escaped NUL');
    $r = $raw->(qq({"user_id":"$U","body":"a\\ud800b"}));
    $t->api_error($r, 400, 'invalid_json', undef, 'a lone surrogate');
    $r = $raw->(qq({"user_id":"$U","body":"a\xff\xfeb"}));
    $t->api_error($r, 400, 'invalid_json', undef, 'bytes that are not UTF-8');
    $r = $raw->(qq({"user_id":"$U","body":"a","ttl":5\0}));
    $t->api_error($r, 400, 'invalid_json', undef,
        'a NUL byte after a number (jansson would skip it)');
    $r = $raw->(qq({"user_id":"$U","body":"a","ttl":01}));
    $t->api_error($r, 400, 'invalid_json', undef, 'a number with a leading 0');
    my $deep = ('[' x 70) . (']' x 70);
    $r = $raw->(qq({"user_id":"$U","body":"a","push":{"data":$deep}}));
    $t->api_error($r, 400, 'invalid_json', undef, 'nested 72 deep');
    like($r->{json} && $r->{json}{error}{message}, qr/deeper than 64/,
        'nested 72 deep: the message says the limit');
    $r = $raw->('[' . ('{"a":' x 70) . '1' . ('}' x 70) . ']',
        '/v1/notifications/batch');
    $t->api_error($r, 400, 'invalid_json', undef, 'a batch nested 71 deep');

    my %many = map { ("extra$_" => 1) } 1 .. 40;
    $r = $t->send_note({ %ok, %many });
    $t->api_error($r, 400, 'invalid_field', undef, '40 unknown fields');
    like($r->{json} && $r->{json}{error}{field}, qr/^extra\d+$/,
        '40 unknown fields: one is named');
    my %pmany = map { ("x$_" => 'y') } 1 .. 40;
    $r = $t->send_note({ %ok, push => { body => 'b', %pmany } });
    like($r->{json} && $r->{json}{error}{field} // '', qr/^push\.x\d+$/,
        '40 unknown fields in push: one is named');
    $r = $t->send_note({ %ok, channels => [('email') x 65] });
    $t->api_error($r, 400, 'invalid_field', 'channels', '65 channel names');
    $r = $t->send_note({ %ok, channels => [('email') x 64] });
    accepted($r, '64 channel names, all email');

    # data: an object of strings, colons and quotes inside them included
    $r = $raw->(qq({"user_id":"$U","channels":["email"],"body":"d",)
        . q("data":{"url":"https://x.example/a:b","q":"say \\":\\" ok"}}));
    $j = accepted($r, 'data values with colons and quotes');
    @l = $t->wait_deliveries($j->{id} // 'none', 1);
    is_deeply($l[0] && $l[0]{data},
        { url => 'https://x.example/a:b', q => 'say ":" ok' },
        'data values with colons and quotes: delivered as sent');
    $r = $raw->(qq({"user_id":"$U","body":"d","data":{"a":"x","b" : {"c":"d"}}}));
    $t->api_error($r, 400, 'invalid_field', 'data', 'data with an object value');
    $r = $raw->(qq({"user_id":"$U","body":"d","data":{"a":"x","b":["c"]}}));
    $t->api_error($r, 400, 'invalid_field', 'data', 'data with an array value');

    # -0 is 0 for jansson: a valid badge
    $r = $raw->(qq({"user_id":"$U","channels":["email"],"body":"z",)
        . q("push":{"body":"p","badge":-0}}));
    accepted($r, 'badge -0');
    $r = $raw->(qq({"user_id":"$U","channels":["email"],"body":"z",)
        . q("push":{"body":"p","badge":-1}}));
    $t->api_error($r, 400, 'invalid_field', 'push.badge', 'badge -1');

    # spaces everywhere, escapes kept: the content reads back the same
    my $body = qq({ "user_id" : "$U" , "channels" : [ "email" ] ,\n)
        . qq(  "title" : "t \\" q" , "body" : "l1\\nl2 \\u00e9 \\/ \\\\" ,\n)
        . qq(  "data" : { "k" : "v w" , "e" : "" } }\n);
    $r = $raw->($body);
    $j = accepted($r, 'spaces and escapes');
    @l = $t->wait_deliveries($j->{id} // 'none', 1);
    is($l[0] && $l[0]{title}, 't " q', 'spaces and escapes: title');
    is($l[0] && $l[0]{body}, "l1\nl2 \x{e9} / \\", 'spaces and escapes: body');
    is_deeply($l[0] && $l[0]{data}, { k => 'v w', e => '' },
        'spaces and escapes: data');

    # a batch too large names its size
    my @many = map { { user_id => $U, body => "m$_" } } 1 .. 1003;
    $r = $t->http(POST => '/v1/notifications/batch', body => \@many);
    $t->api_error($r, 413, 'batch_too_large', undef, 'a batch of 1003');
    like($r->{json} && $r->{json}{error}{message}, qr/not 1003/,
        'a batch of 1003: the message says 1003');
    $r = $raw->('[]', '/v1/notifications/batch');
    $t->api_error($r, 400, 'invalid_json', undef, 'an empty batch');
    $r = $raw->(qq([{"user_id":"$U","body":"ok"}, 7, "x"]),
        '/v1/notifications/batch');
    is($r->{status}, 200, 'a batch with items that are not objects: 200');
    is_deeply([map { $_->{status} } @{$r->{json}{results} // []}],
        [202, 400, 400], 'each item answered for itself')
        or diag(explain $r->{json});
}

# ==== no_address ===========================================================

{
    my $r = $t->put_user('send-mailonly', { email => 'mo@example.com' });
    $r = $t->send_note({ user_id => 'send-mailonly', channels => ['sms'],
        body => 'x' });
    $t->api_error($r, 422, 'no_address', undef, 'sms to a user without phone');
    $r = $t->send_note({ user_id => 'send-mailonly', channels => ['push'],
        body => 'x' });
    $t->api_error($r, 422, 'no_address', undef,
        'push to a user without devices');
    $r = $t->send_note({ user_id => 'send-mailonly', channels => ['web'],
        body => 'x' });
    $t->api_error($r, 422, 'no_address', undef,
        'web to a user without web devices');
    $r = $t->send_note({ user_id => 'send-mailonly',
        channels => ['email', 'sms'], body => 'x' });
    $t->api_error($r, 422, 'no_address', undef,
        'email+sms to a user without phone: whole request refused');
    $r = $t->send_note({ user_id => 'send-mailonly', body => 'x' });
    my $j = accepted($r, 'no channels given: the channels the user has');
    is_deeply([map { $_->{channel} } @{$j->{deliveries} // []}], ['email'],
        'no channels given: email only');
    $t->put_user('send-nothing', {});
    $r = $t->send_note({ user_id => 'send-nothing', body => 'x' });
    $t->api_error($r, 422, 'no_address', undef,
        'a user with no address at all');
}

# ==== the per-user path ====================================================

{
    my $r = $t->http(POST => "/v1/users/$U/notifications",
        body => { channels => ['email'], title => 'P', body => 'path form' });
    my $j = accepted($r, 'POST /v1/users/ID/notifications');
    is($j->{user_id}, $U, 'path form: user_id from the path');
    my @l = $t->wait_deliveries($j->{id} // 'none', 1);
    is($l[0] && $l[0]{to}, 'send1@example.com', 'path form: delivered');
    $r = $t->http(POST => "/v1/users/$U/notifications",
        body => { user_id => $U, channels => ['email'], body => 'same' });
    accepted($r, 'path form with the same user_id in the body');
    $r = $t->http(POST => '/v1/users/send-nobody/notifications',
        body => { channels => ['email'], body => 'x' });
    $t->api_error($r, 404, 'not_found', 'user_id', 'path form, unknown user');
}

# ==== listing with cursor paging ===========================================

{
    my $L = 'send-list';
    $t->put_user($L, { email => 'list@example.com' });
    my @ids;
    for my $i (1 .. 25) {
        my $r = $t->send_note({ user_id => $L, body => "n$i" });
        push @ids, $r->{json}{id} if $r->{status} == 202 && $r->{json};
    }
    is(scalar @ids, 25, 'listing: 25 notifications sent');
    my @want = reverse @ids;

    my (@got, @sizes, $cursor, $last);
    for my $page (1 .. 5) {
        my $q = '?limit=10' . (defined $cursor ? "&cursor=$cursor" : '');
        my $r = $t->http(GET => "/v1/users/$L/notifications$q");
        is($r->{status}, 200, "listing page $page: 200") or diag(explain $r),
            last;
        my $j = $r->{json} // {};
        ok(exists $j->{next_cursor}, "listing page $page: has next_cursor")
            or diag(explain $j);
        my $list = ref $j->{notifications} eq 'ARRAY' ? $j->{notifications} : [];
        push @sizes, scalar @$list;
        push @got, map { $_->{id} } @$list;
        ok(!grep({ !defined $_->{created_at} || !defined $_->{status} }
                @$list), "listing page $page: items have created_at, status");
        $cursor = $j->{next_cursor};
        $last = $j;
        last unless defined $cursor;
    }
    is_deeply(\@sizes, [10, 10, 5], 'listing: pages of 10, 10, 5');
    ok($last && exists $last->{next_cursor} && !defined $last->{next_cursor},
        'listing: next_cursor null on the last page');
    is_deeply(\@got, \@want, 'listing: all 25, newest first, no repeats')
        or diag(explain { got => \@got, want => \@want });

    my $r = $t->http(GET => "/v1/users/$L/notifications");
    is(scalar @{$r->{json} && $r->{json}{notifications} || []}, 20,
        'listing: default limit 20') or diag(explain $r);
    is($r->{json} && $r->{json}{notifications}[0]{id}, $want[0],
        'listing: the newest first');
    $r = $t->http(GET => "/v1/users/$L/notifications?limit=100");
    is(scalar @{$r->{json} && $r->{json}{notifications} || []}, 25,
        'listing: limit 100 gives all 25');
    ok($r->{json} && exists $r->{json}{next_cursor}
        && !defined $r->{json}{next_cursor}, 'listing: limit 100, cursor null');
    for my $bad (0, 101, -1, 'ten') {
        $r = $t->http(GET => "/v1/users/$L/notifications?limit=$bad");
        $t->api_error($r, 400, 'invalid_field', 'limit', "listing limit=$bad");
    }
    $r = $t->http(GET => '/v1/users/send-nobody/notifications');
    $t->api_error($r, 404, 'not_found', undef, 'listing of an unknown user');
    $r = $t->http(GET => "/v1/users/$L/notifications", auth => 'ro:ro-secret');
    is($r->{status}, 200, 'listing with a read-only key: 200');
}

# ==== batch ================================================================

{
    my @items = (
        { user_id => $U, channels => ['email'], body => 'batch 0' },
        { user_id => $U, channels => 'email', body => 'batch 1' },
        { user_id => 'send-nobody', channels => ['email'], body => 'batch 2' },
        { user_id => $U, channels => ['sms'], body => 'batch 3' },
        'not an object',
    );
    my $r = $t->http(POST => '/v1/notifications/batch', body => \@items);
    is($r->{status}, 200, 'batch of 5: 200') or diag(explain $r);
    my $res = $r->{json} && ref $r->{json}{results} eq 'ARRAY'
        ? $r->{json}{results} : [];
    is(scalar @$res, 5, 'batch: 5 results') or diag(explain $r);
    is_deeply([map { $_->{index} } @$res], [0 .. 4], 'batch: indexes 0..4');
    is_deeply([map { $_->{status} } @$res], [202, 400, 404, 202, 400],
        'batch: statuses 202 400 404 202 400') or diag(explain $res);
    is($res->[1] && $res->[1]{error}{code}, 'invalid_field',
        'batch item 1: invalid_field');
    is($res->[1] && $res->[1]{error}{field}, 'channels',
        'batch item 1: field channels');
    is($res->[2] && $res->[2]{error}{code}, 'not_found',
        'batch item 2: not_found');
    ok($res->[4] && $res->[4]{error}, 'batch item 4: an error');
    for my $i (0, 3) {
        my $n = $res->[$i] && $res->[$i]{notification} || {};
        ok($n->{id}, "batch item $i: a notification id") or next;
        my @l = $t->wait_deliveries($n->{id}, 1);
        is(scalar @l, 1, "batch item $i: delivered");
        is($l[0] && $l[0]{body}, "batch $i", "batch item $i: its body");
    }
    ok(!grep({ ($_->{body} // '') =~ /^batch [124]$/ } $t->deliveries),
        'batch: the invalid items were not delivered');

    my @many = map { { user_id => $U, channels => ['email'],
        body => "many $_" } } 1 .. 1001;
    $r = $t->http(POST => '/v1/notifications/batch', body => \@many);
    ok($r->{status} == 400 || $r->{status} == 413, 'batch of 1001: 400 or 413')
        or diag(explain { status => $r->{status}, body => $r->{body} });
    sleep 0.5;
    ok(!grep({ ($_->{body} // '') =~ /^many / } $t->deliveries),
        'batch of 1001: nothing of it was sent');

    $r = $t->http(POST => '/v1/notifications/batch',
        body => { user_id => $U, body => 'x' });
    is($r->{status}, 400, 'batch body an object: 400') or diag(explain $r);
    $r = $t->http(POST => '/v1/notifications/batch', body => '"x"');
    is($r->{status}, 400, 'batch body a string: 400') or diag(explain $r);
    $r = $t->http(POST => '/v1/notifications/batch', body => '[{"user_id":');
    $t->api_error($r, 400, 'invalid_json', undef, 'batch truncated JSON');
    $r = $t->http(POST => '/v1/notifications/batch', body => \@items,
        auth => 'ro:ro-secret');
    $t->api_error($r, 403, 'forbidden', undef, 'batch with a read-only key');
}

# ==== scopes ===============================================================

{
    my $RO = 'ro:ro-secret';
    my $SO = 'sendonly:sendonly-secret';
    my $UO = 'usersonly:usersonly-secret';
    my $note = { user_id => $U, channels => ['email'], body => 'scoped' };
    my @deny = (
        [$RO, POST => '/v1/notifications', $note, 'read key POST notification'],
        [$RO, POST => "/v1/users/$U/notifications", $note,
            'read key POST per-user notification'],
        [$RO, PUT => '/v1/users/scope-new', { email => 'a@example.com' },
            'read key PUT user'],
        [$RO, PATCH => "/v1/users/$U", { locale => 'en' },
            'read key PATCH user'],
        [$RO, DELETE => "/v1/users/$U", undef, 'read key DELETE user'],
        [$RO, POST => "/v1/users/$U/devices",
            { platform => 'ios', token => Herald::Test::ios_token('scope') },
            'read key POST device'],
        [$RO, PUT => "/v1/users/$U/preferences", { channels => {} },
            'read key PUT preferences'],
        [$SO, GET => "/v1/users/$U", undef, 'send key GET user'],
        [$SO, GET => "/v1/users/$U/devices", undef, 'send key GET devices'],
        [$SO, PUT => '/v1/users/scope-new', { email => 'a@example.com' },
            'send key PUT user'],
        [$UO, POST => '/v1/notifications', $note, 'users key POST notification'],
    );
    for my $c (@deny) {
        my ($auth, $m, $path, $body, $name) = @$c;
        my $r = $t->http($m => $path, auth => $auth,
            defined $body ? (body => $body) : ());
        $t->api_error($r, 403, 'forbidden', undef, $name);
    }
    my $r = $t->http(GET => "/v1/users/$U");
    my $u = $r->{json} && $r->{json}{user} || {};
    is($u->{email}, 'send1@example.com', 'refused requests: user still there');
    ok(!defined $u->{locale}, 'refused PATCH: no locale') or diag(explain $u);
    is(scalar @{$u->{devices} // []}, 4, 'refused POST device: still 4 devices');
    $r = $t->http(GET => '/v1/users/scope-new');
    is($r->{status}, 404, 'the refused PUT created no user');
    $r = $t->http(GET => "/v1/users/$U/notifications?limit=1", auth => $RO);
    is($r->{status}, 200, 'read key GET notifications list: 200');
    $r = $t->send_note($note, auth => $SO);
    is($r->{status}, 202, 'send key POST notification: 202')
        or diag(explain $r);
    $r = $t->http(GET => "/v1/users/$U", auth => $UO);
    is($r->{status}, 200, 'users key GET user: 200') or diag(explain $r);
}

$t->stop;
ok(!$t->{stop_timed_out}, 'herald stopped on SIGTERM');
done_testing();
