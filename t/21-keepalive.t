#!/usr/bin/perl

# HTTP/1.1 connection handling: many requests on one keep-alive connection,
# pipelined requests written with one write() answered in order (including
# requests for users on other workers' shards), Connection: close, HTTP/1.0.

use strict;
use warnings;
no warnings qw(uninitialized);

use Test::More;
use Herald::Test;

my $t = Herald::Test->new;
$t->default_conf(workers => 2);
$t->run;

my @users = map { "ka-u$_" } 1 .. 8;

# ==== many requests on one connection ======================================

{
    my $c = $t->conn;
    ok($c->sock, 'connected') or BAIL_OUT("cannot connect: $c->{error}");
    my $port = $c->local_port;
    my ($n, $fail) = (0, 0);
    for my $u (@users) {
        my $r = $c->request(PUT => "/v1/users/$u",
            body => { email => "$u\@example.com", phone => '+15550000001' });
        $n++;
        if ($r->{status} !~ /^20[01]$/ || ($r->{json}{user}{id} // '') ne $u) {
            $fail++;
            diag("PUT $u: " . explain($r));
        }
    }
    my $workers_seen = {};
    for my $i (1 .. 100) {
        my $u = $users[$i % @users];
        my $r;
        if ($i % 3 == 0) {
            $r = $c->request(GET => '/healthz', auth => undef);
            $fail++, diag("healthz #$i: " . explain($r))
                unless $r->{status} == 200
                    && ($r->{json}{status} // '') eq 'ok';
        } elsif ($i % 3 == 1) {
            $r = $c->request(GET => "/v1/users/$u");
            $fail++, diag("GET $u #$i: " . explain($r))
                unless $r->{status} == 200
                    && ($r->{json}{user}{email} // '') eq "$u\@example.com";
        } else {
            $r = $c->request(POST => '/v1/notifications', body => {
                user_id => $u, channels => ['email'], title => "t$i",
                body => "b$i" });
            $fail++, diag("POST for $u #$i: " . explain($r))
                unless $r->{status} == 202 && $r->{json}{id};
        }
        $n++;
        $workers_seen->{$r->{headers}{'x-herald-worker'} // '?'}++;
        last if $r->{status} == 0;
        if (($r->{headers}{connection} // '') =~ /close/i) {
            $fail++;
            diag("request #$i answered with Connection: close");
            last;
        }
    }
    is($fail, 0, "$n requests on one keep-alive connection all succeeded");
    is($c->local_port, $port, 'still the same socket');
    is(scalar keys %$workers_seen, 1,
        'X-Herald-Worker is the same for the whole connection')
        or diag(explain $workers_seen);
    ok(!$c->closed(0.5), 'connection still open after 100+ requests');
    $c->close;
}

# ==== pipelining ===========================================================

{
    my $c = $t->conn;
    my (@req, @expect);
    for my $i (0 .. $#users) {
        my $u = $users[$i];
        push @req, $t->request_bytes(PUT => "/v1/users/$u",
            body => { email => "pipe$i\@example.com", phone => "+1555000$i" });
        push @expect, ["PUT $u", qr/^20[01]$/, sub { $_[0]{user}{email} eq "pipe$i\@example.com" }];
        push @req, $t->request_bytes(GET => '/healthz', auth => undef)
            if $i == 3;
        push @expect, ['GET /healthz', 200, sub { $_[0]{status} eq 'ok' }]
            if $i == 3;
    }
    for my $i (reverse 0 .. $#users) {
        my $u = $users[$i];
        push @req, $t->request_bytes(GET => "/v1/users/$u");
        push @expect, ["GET $u", 200, sub {
            $_[0]{user}{id} eq $u && $_[0]{user}{email} eq "pipe$i\@example.com" }];
        push @req, $t->request_bytes(POST => '/v1/notifications', body => {
            user_id => $u, channels => ['sms'], title => "pipe $i",
            body => "pipelined $i" });
        push @expect, ["POST for $u", 202, sub {
            $_[0]{user_id} eq $u && $_[0]{deliveries}[0]{to} eq "+1555000$i" }];
    }
    push @req, $t->request_bytes(GET => '/v1/users/ka-nobody');
    push @expect, ['GET ka-nobody', 404, sub { $_[0]{error}{code} eq 'not_found' }];
    push @req, $t->request_bytes(GET => '/healthz', auth => undef);
    push @expect, ['GET /healthz (last)', 200, sub { $_[0]{status} eq 'ok' }];

    ok($c->write(join('', @req)),
        scalar(@req) . ' pipelined requests written in one write()');
    my @res = eval { $c->read_responses(scalar @req, timeout => 15) };
    diag("reading pipelined responses: $@") if $@;
    is(scalar @res, scalar @req, 'one response per pipelined request');

    my @ids;
    for my $i (0 .. $#expect) {
        my ($name, $status, $check) = @{$expect[$i]};
        my $r = $res[$i];
        my $ok = $r && (ref $status ? $r->{status} =~ $status
                                    : $r->{status} == $status)
            && $r->{json}
            && eval { $check->($r->{json}) };
        ok($ok, "pipelined #$i $name: status, body match")
            or diag(explain $r);
        push @ids, $r->{json}{id} if $ok && !ref $status && $status == 202;
    }

    # the pipelined notifications are delivered too
    my %want = map { $_ => 1 } @ids;
    my $got = $t->wait_for(sub {
        my %seen = map { ($_->{notification_id} // '') => 1 } $t->deliveries;
        !grep { !$seen{$_} } keys %want;
    }, 15);
    ok($got && @ids == @users, 'pipelined notifications delivered');

    # one more request after the pipeline, on the same connection
    my $r = $c->request(GET => '/healthz', auth => undef);
    is($r->{status}, 200, 'connection usable after the pipeline');

    # a pipeline split at an awkward place: in the middle of a header line
    # and in the middle of the body
    my $two = $t->request_bytes(PUT => "/v1/users/ka-split",
            body => { email => 'split@example.com' })
        . $t->request_bytes(GET => '/v1/users/ka-split');
    my $cut1 = index($two, 'Content-Length') + 5;
    my $cut2 = index($two, '"email"') + 3;
    $c->write(substr($two, 0, $cut1));
    select(undef, undef, undef, 0.2);
    $c->write(substr($two, $cut1, $cut2 - $cut1));
    select(undef, undef, undef, 0.2);
    $c->write(substr($two, $cut2));
    @res = eval { $c->read_responses(2, timeout => 10) };
    is(scalar @res, 2, 'split pipeline: two responses') or diag($@);
    like($res[0] && $res[0]{status}, qr/^20[01]$/, 'split pipeline: PUT 200/201');
    is($res[1] && $res[1]{json} && $res[1]{json}{user}{email},
        'split@example.com', 'split pipeline: GET sees the PUT');
    $c->close;
}

# ==== a deep pipeline ======================================================

# 300 POSTs for users on both shards in one write(): every answer in order
{
    my $c = $t->conn;
    my @who = map { $users[$_ % @users] } 0 .. 299;
    my $bytes = join '', map {
        $t->request_bytes(POST => '/v1/notifications', body => {
            user_id => $who[$_], channels => ['email'], title => "deep $_",
            body => "deep $_" })
    } 0 .. 299;
    ok($c->write($bytes), '300 pipelined POSTs written at once ('
        . length($bytes) . ' bytes)');
    my @res = eval { $c->read_responses(300, timeout => 30) };
    diag("reading: $@") if $@;
    is(scalar @res, 300, '300 responses');
    my @wrong = grep {
        $res[$_]{status} != 202 || $res[$_]{json}{user_id} ne $who[$_]
    } 0 .. $#res;
    is(scalar @wrong, 0, 'all 202, each for the user of its request')
        or diag(explain $res[$wrong[0]]);
    my %ids = map { $_->{json}{id} => 1 } @res;
    is(scalar keys %ids, scalar @res, 'all notification ids distinct');
    $c->close;
}

# ==== Connection: close ====================================================

{
    my $c = $t->conn;
    my $r = $c->request(GET => '/v1/users/ka-u1', close => 1);
    is($r->{status}, 200, 'Connection: close request answered');
    like($r->{headers}{connection} // '', qr/\bclose\b/i,
        'response says Connection: close');
    ok($c->closed(5), 'server closes after Connection: close');
    is($c->buffered, '', 'nothing after the response');
    $c->close;

    # Connection: close in the middle of a pipeline: later requests ignored
    $c = $t->conn;
    $c->write($t->request_bytes(GET => '/healthz', auth => undef)
        . $t->request_bytes(GET => '/healthz', auth => undef, close => 1)
        . $t->request_bytes(GET => '/healthz', auth => undef));
    my @res = eval { $c->read_responses(3, timeout => 5) };
    is(scalar @res, 2, 'pipeline with Connection: close in #2: 2 responses')
        or diag($@ || explain \@res);
    ok($c->closed(5), 'and then the connection is closed');
    $c->close;
}

# ==== HTTP/1.0 =============================================================

{
    my $c = $t->conn;
    my $r = $c->request(GET => '/healthz', auth => undef, version => '1.0',
        headers => { Host => undef });
    is($r->{status}, 200, 'HTTP/1.0 request answered') or diag(explain $r);
    like($r->{version} // '', qr/^1\.[01]$/, 'HTTP/1.x status line');
    ok($c->closed(5), 'HTTP/1.0 without keep-alive: connection closed');
    $c->close;

    $c = $t->conn;
    $r = $c->request(GET => '/v1/users/ka-u1', version => '1.0');
    is($r->{status}, 200, 'HTTP/1.0 with Host and auth')
        or diag(explain $r);
    ok($c->closed(5), 'HTTP/1.0: closed by default');
    $c->close;
}

# ==== an idle keep-alive connection does not block others ==================

{
    my $idle = $t->conn;
    $idle->request(GET => '/healthz', auth => undef);
    my $r = $t->http(GET => '/healthz', auth => undef);
    is($r->{status}, 200, 'other connections served while one is idle');
    my $r2 = $idle->request(GET => '/healthz', auth => undef);
    is($r2->{status}, 200, 'idle keep-alive connection still usable');
    $idle->close;
}

$t->stop;
done_testing();
