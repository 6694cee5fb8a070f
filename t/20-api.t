#!/usr/bin/perl

# HTTP API, session 1 slice: auth and scopes, error bodies, size limit,
# users, notifications end to end (202 -> delivered -> deliveries.log),
# /healthz and the access log format.

use strict;
use warnings;

use Test::More;
use Herald::Test;

my $t = Herald::Test->new;
$t->default_conf(workers => 2, extra => 'client_max_body_size 1k;');
$t->run;

# Checks the common error shape; returns true if all matched.
sub is_error
{
    my ($r, $status, $code, $field, $name) = @_;
    my $ok = 1;
    $ok &= is($r->{status}, $status, "$name: status $status");
    my $e = ref $r->{json} eq 'HASH' ? $r->{json}{error} : undef;
    $ok &= ok(ref $e eq 'HASH', "$name: JSON error object");
    $ok &= is($e && $e->{code}, $code, "$name: code $code");
    $ok &= ok($e && defined $e->{message} && length $e->{message},
        "$name: has a message");
    if (defined $field) {
        $ok &= is($e && $e->{field}, $field, "$name: field $field");
    }
    like($r->{headers}{'content-type'} // '', qr{^application/json},
        "$name: Content-Type application/json");
    diag(explain $r) unless $ok;
    return $ok;
}

my $note = { user_id => 'api-u1', channels => ['email', 'sms'],
             title => 'Hi', body => 'Hello' };

# ==== auth =================================================================

{
    my $r = $t->http(POST => '/v1/notifications', body => $note, auth => undef);
    is_error($r, 401, 'unauthorized', undef, 'no auth');
    is($r->{headers}{'www-authenticate'}, 'Basic realm="herald"',
        'no auth: WWW-Authenticate');

    $r = $t->http(POST => '/v1/notifications', body => $note,
        auth => 'demo:wrong-secret');
    is_error($r, 401, 'unauthorized', undef, 'wrong secret');
    is($r->{headers}{'www-authenticate'}, 'Basic realm="herald"',
        'wrong secret: WWW-Authenticate');

    $r = $t->http(POST => '/v1/notifications', body => $note,
        auth => 'nobody:demo-secret');
    is_error($r, 401, 'unauthorized', undef, 'unknown key');
    is($r->{headers}{'www-authenticate'}, 'Basic realm="herald"',
        'unknown key: WWW-Authenticate');

    $r = $t->http(GET => '/v1/users/api-u1', auth => undef,
        headers => { Authorization => 'Bearer demo-secret' });
    is_error($r, 401, 'unauthorized', undef, 'non-Basic Authorization');

    $r = $t->http(GET => '/v1/users/api-u1', auth => undef,
        headers => { Authorization => 'Basic !!!notbase64' });
    is_error($r, 401, 'unauthorized', undef, 'garbage Basic credentials');

    $r = $t->http(POST => '/v1/notifications', body => $note,
        auth => 'ro:ro-secret');
    is_error($r, 403, 'forbidden', undef, 'key ro (scope read) POST');

    $r = $t->http(PUT => '/v1/users/api-ro', body => { email => 'x@y.z' },
        auth => 'ro:ro-secret');
    is_error($r, 403, 'forbidden', undef, 'key ro (scope read) PUT user');
}

# ==== routing ==============================================================

{
    my $r = $t->http(GET => '/v1/nope');
    is_error($r, 404, 'not_found', undef, 'unknown path');

    $r = $t->http(GET => '/nope');
    is_error($r, 404, 'not_found', undef, 'unknown top-level path');

    $r = $t->http(DELETE => '/v1/notifications');
    is_error($r, 405, 'method_not_allowed', undef, 'DELETE /v1/notifications');

    $r = $t->http(GET => '/v1/notifications');
    is_error($r, 405, 'method_not_allowed', undef, 'GET /v1/notifications');

    $r = $t->http(POST => '/v1/users/api-u1', body => { email => 'a@b.c' });
    is_error($r, 405, 'method_not_allowed', undef, 'POST /v1/users/ID');
}

# ==== health ===============================================================

{
    my $r = $t->http(GET => '/healthz', auth => undef);
    is($r->{status}, 200, 'healthz 200 without auth');
    is_deeply($r->{json}, { status => 'ok' }, 'healthz body')
        or diag(explain $r);
    like($r->{headers}{'x-herald-worker'} // '', qr/^\d+$/,
        'X-Herald-Worker on healthz');
}

# ==== users ================================================================

my $user;
{
    my $r = $t->http(PUT => '/v1/users/api-u1', body => {
        email => 'u1@example.com', phone => '+15551234567',
        locale => 'en', timezone => 'UTC' });
    is($r->{status}, 201, 'PUT new user: 201 Created') or diag(explain $r);
    like($r->{headers}{'x-herald-worker'} // '', qr/^[01]$/,
        'PUT user: X-Herald-Worker 0 or 1');
    $user = $r->{json} && $r->{json}{user};
    ok(ref $user eq 'HASH', 'PUT user: {"user": {...}}') or diag(explain $r);
    $user //= {};
    is($user->{id}, 'api-u1', 'user.id');
    is($user->{email}, 'u1@example.com', 'user.email');
    is($user->{phone}, '+15551234567', 'user.phone');
    is($user->{locale}, 'en', 'user.locale');
    is($user->{timezone}, 'UTC', 'user.timezone');
    like($user->{shard} // '', qr/^[01]$/, 'user.shard is 0 or 1 (2 shards)');
    ok(defined $user->{created_at} && length $user->{created_at},
        'user.created_at');
    ok(defined $user->{updated_at} && length $user->{updated_at},
        'user.updated_at');

    $r = $t->http(GET => '/v1/users/api-u1');
    is($r->{status}, 200, 'GET user 200') or diag(explain $r);
    is_deeply($r->{json} && $r->{json}{user}, $user,
        'GET user returns what PUT returned') or diag(explain $r);

    # update: same created_at, the new field value
    $r = $t->http(PUT => '/v1/users/api-u1', body => {
        email => 'u1@example.com', phone => '+15551234567',
        locale => 'fr', timezone => 'UTC' });
    is($r->{status}, 200, 'PUT existing user: 200') or diag(explain $r);
    is($r->{json} && $r->{json}{user}{locale}, 'fr', 'update: new locale');
    is($r->{json} && $r->{json}{user}{created_at}, $user->{created_at},
        'update: created_at unchanged');
    $user = $r->{json}{user} if $r->{json} && $r->{json}{user};

    $r = $t->http(GET => '/v1/users/api-nobody');
    is_error($r, 404, 'not_found', undef, 'GET unknown user');

    # a user without a phone, for the no_address case
    $r = $t->http(PUT => '/v1/users/api-u2',
        body => { email => 'u2@example.com' });
    like($r->{status}, qr/^20[01]$/, 'PUT user without phone')
        or diag(explain $r);

    $r = $t->http(PUT => '/v1/users/bad!id', body => { email => 'a@b.c' });
    ok($r->{status} == 400 || $r->{status} == 404,
        'PUT user with "!" in the id is refused (400/404)')
        or diag(explain $r);

    $r = $t->http(PUT => '/v1/users/' . ('x' x 129),
        body => { email => 'a@b.c' });
    ok($r->{status} == 400 || $r->{status} == 404,
        'PUT user with a 129-char id is refused') or diag(explain $r);

    $r = $t->http(PUT => '/v1/users/' . ('y' x 128),
        body => { email => 'a@b.c' });
    like($r->{status}, qr/^20[01]$/, 'PUT user with a 128-char id')
        or diag(explain $r);

    $r = $t->http(PUT => '/v1/users/api-u3', body => { email => 5 });
    is_error($r, 400, 'invalid_field', 'email', 'PUT user email not a string');
}

# ==== bad input ============================================================

{
    my $r = $t->http(POST => '/v1/notifications', body => '{"user_id":');
    is_error($r, 400, 'invalid_json', undef, 'truncated JSON');

    $r = $t->http(POST => '/v1/notifications', body => 'not json at all');
    is_error($r, 400, 'invalid_json', undef, 'not JSON');

    $r = $t->http(POST => '/v1/notifications', body => '[1,2]');
    ok($r->{status} == 400, 'a JSON array body is 400') or diag(explain $r);

    $r = $t->http(POST => '/v1/notifications', body => {
        channels => ['email'], title => 'Hi', body => 'Hello' });
    is_error($r, 400, 'missing_field', 'user_id', 'missing user_id');

    $r = $t->http(POST => '/v1/notifications', body => {
        user_id => 7, channels => ['email'], title => 'Hi', body => 'x' });
    is_error($r, 400, 'invalid_field', 'user_id', 'user_id not a string');

    $r = $t->http(POST => '/v1/notifications', body => {
        user_id => 'api-u1', channels => ['pigeon'], title => 'Hi',
        body => 'x' });
    is_error($r, 400, 'invalid_field', 'channels', 'unknown channel');

    my $big = { %$note, body => 'x' x 2000 };
    $r = $t->http(POST => '/v1/notifications', body => $big);
    is_error($r, 413, 'body_too_large', undef,
        'body over client_max_body_size 1k');

    $r = $t->http(POST => '/v1/notifications', auth => 'demo:demo-secret',
        headers => { 'Content-Length' => undef,
                     'Transfer-Encoding' => 'chunked' },
        body => "0\r\n\r\n");
    is_error($r, 411, 'length_required', undef, 'chunked request body');

    {
        my $c = $t->conn;
        $c->write("POST /v1/notifications HTTP/1.1\r\nHost: x\r\n"
            . "Authorization: Basic ZGVtbzpkZW1vLXNlY3JldA==\r\n"
            . "Connection: close\r\n\r\n");
        $r = eval { $c->read_response } // { status => 0, error => $@ };
        is_error($r, 411, 'length_required', undef, 'POST without a body');
        $c->close;
    }

    $r = $t->http(POST => '/v1/notifications', body => { %$note,
        user_id => 'api-nobody' });
    is_error($r, 404, 'not_found', 'user_id', 'notification for unknown user');

    $r = $t->http(POST => '/v1/notifications', body => {
        user_id => 'api-u2', channels => ['sms'], title => 'Hi',
        body => 'x' });
    is_error($r, 422, 'no_address', 'channels', 'sms to a user with no phone');

    $r = $t->http(GET => '/v1/notifications/n-does-not-exist');
    is_error($r, 404, 'not_found', undef, 'GET unknown notification');
}

# ==== notifications end to end =============================================

{
    my $r = $t->http(POST => '/v1/notifications', body => $note);
    is($r->{status}, 202, 'POST notification 202') or diag(explain $r);
    my $n = $r->{json} // {};
    my $id = $n->{id} // '';
    like($id, qr/^n\S+$/, 'notification id starts with n');
    is($n->{user_id}, 'api-u1', 'user_id echoed');
    is($n->{status}, 'accepted', 'status accepted');
    my @d = @{ref $n->{deliveries} eq 'ARRAY' ? $n->{deliveries} : []};
    is(scalar @d, 2, 'two deliveries (email, sms)') or diag(explain $n);
    my %to = (email => 'u1@example.com', sms => '+15551234567');
    for my $i (0 .. $#d) {
        is($d[$i]{id}, "$id-$i", "delivery $i id");
        is($d[$i]{status}, 'queued', "delivery $i queued");
        is($d[$i]{to}, $to{$d[$i]{channel} // ''},
            "delivery $i ($d[$i]{channel}) address");
    }
    is_deeply([sort map { $_->{channel} } @d], ['email', 'sms'],
        'delivery channels');

    # status eventually shows every delivery delivered
    my $s;
    my $done = $t->wait_for(sub {
        $s = $t->http(GET => "/v1/notifications/$id");
        return 0 unless $s->{status} == 200 && $s->{json};
        my $ds = $s->{json}{deliveries} // [];
        return @$ds == 2 && !grep { ($_->{status} // '') ne 'delivered' } @$ds;
    }, 15);
    ok($done, 'GET notification: all deliveries delivered')
        or diag(explain $s);
    my $j = $s->{json} // {};
    is($j->{id}, $id, 'status: id');
    is($j->{user_id}, 'api-u1', 'status: user_id');
    ok(defined $j->{created_at}, 'status: created_at');
    ok(defined $j->{status}, 'status: status');
    for my $dl (@{$j->{deliveries} // []}) {
        my $c = $dl->{channel} // '?';
        is($dl->{provider}, 'sink', "status $c: provider sink");
        is($dl->{to}, $to{$c}, "status $c: to");
        ok(($dl->{attempts} // 0) >= 1, "status $c: attempts >= 1");
        ok(ref $dl->{timeline} eq 'ARRAY' && @{$dl->{timeline}} >= 1
            && !grep({ !defined $_->{at} || !defined $_->{event} }
                @{$dl->{timeline}}),
            "status $c: timeline of {at, event}") or diag(explain $dl);
    }

    $r = $t->http(GET => "/v1/notifications/$id", auth => 'ro:ro-secret');
    is($r->{status}, 200, 'GET notification with key ro');

    # the log provider wrote one line per delivery
    my @lines;
    $t->wait_for(sub {
        @lines = grep { ($_->{notification_id} // '') eq $id } $t->deliveries;
        @lines >= 2;
    }, 10);
    is(scalar @lines, 2, 'deliveries.log: two lines for the notification')
        or diag($t->read_file('deliveries.log'));
    for my $l (sort { $a->{delivery_id} cmp $b->{delivery_id} } @lines) {
        my $c = $l->{channel} // '?';
        like($l->{delivery_id}, qr/^\Q$id\E-[01]$/, "log $c: delivery_id");
        is($l->{user_id}, 'api-u1', "log $c: user_id");
        is($l->{to}, $to{$c}, "log $c: to");
        is($l->{title}, 'Hi', "log $c: title");
        is($l->{body}, 'Hello', "log $c: body");
        is($l->{attempt}, 1, "log $c: attempt 1");
        like($l->{time} // '',
            qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, "log $c: time");
    }

    # UTF-8 and JSON escapes survive the trip to the sink
    my $title = "caf\x{e9} \"quoted\" \\ \x{2603}";
    $r = $t->http(POST => '/v1/notifications', body => {
        user_id => 'api-u1', channels => ['email'], title => $title,
        body => "line1\nline2" });
    is($r->{status}, 202, 'POST notification with UTF-8 and escapes')
        or diag(explain $r);
    my $id2 = $r->{json} && $r->{json}{id} // '';
    my ($l2) = ();
    $t->wait_for(sub {
        ($l2) = grep { ($_->{notification_id} // '') eq $id2 } $t->deliveries;
        $l2;
    }, 10);
    is($l2 && $l2->{title}, $title, 'log: UTF-8 title intact');
    is($l2 && $l2->{body}, "line1\nline2", 'log: body with newline intact');
}

# ==== access log ===========================================================

{
    my $r = $t->http(GET => '/healthz', auth => undef,
        headers => { 'X-Marker' => 'access-log' });
    my $re = qr{^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (\S+) "(\S+) (\S+)" (\d{3}) (\d+) (\d+)$};
    my @lines;
    $t->wait_for(sub {
        @lines = split /\n/, $t->access_log;
        grep { m{"POST /v1/notifications" 202 } } @lines;
    }, 5);
    ok(@lines > 10, 'access log has lines') or diag($t->access_log);

    my @bad = grep { $_ !~ $re } @lines;
    ok(!@bad, 'every access log line matches '
        . 'TIME CLIENT KEY "METHOD PATH" STATUS BYTES USEC')
        or diag(join("\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]));

    my ($post) = grep { m{ demo "POST /v1/notifications" 202 } } @lines;
    ok($post, 'access log: demo "POST /v1/notifications" 202')
        or diag(join("\n", @lines));
    if ($post && $post =~ $re) {
        is($2, '127.0.0.1', 'access log: client 127.0.0.1');
        ok($7 > 0, 'access log: bytes > 0');
    }
    my ($hz) = grep { m{ - "GET /healthz" 200 \d+ \d+$} } @lines;
    ok($hz, 'access log: key "-" for /healthz without auth')
        or diag(join("\n", @lines));
    ok(grep({ m{ "POST /v1/notifications" 401 } } @lines),
        'access log: 401 logged');
    ok(grep({ m{ ro "POST /v1/notifications" 403 } } @lines),
        'access log: 403 logged with key ro');
    ok(grep({ m{ "GET /v1/nope" 404 } } @lines), 'access log: 404 logged');
}

$t->stop;
ok(!$t->{stop_timed_out}, 'herald stopped on SIGTERM');
done_testing();
