#!/usr/bin/perl
# Security: hashed API secrets (herald -k), secrets never in logs, slow
# and oversized requests cut off, store files private.

use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use lib 't/lib';
use Herald::Test;

Herald::Test->require_binary;
my $bin = Herald::Test->binary;

# ==== herald -k ====
my $hash = `echo 'sekrit-value-42' | $bin -k`;
chomp $hash;
like($hash, qr/^sha256\$[0-9a-f]{32}\$[0-9a-f]{64}$/, 'herald -k prints a salted hash');
my $hash2 = `echo 'sekrit-value-42' | $bin -k`;
chomp $hash2;
isnt($hash, $hash2, 'a fresh salt every time');
is(system("echo short | $bin -k >/dev/null 2>&1") >> 8, 1,
    'a short secret is refused');

my $t = Herald::Test->new;
$t->default_conf(workers => 2, extra => <<"CONF");
client_header_timeout 1s;
client_body_timeout 1s;
api_key hashed {
    secret $hash;
    scopes send users read;
}
CONF
$t->run;

is($t->http(GET => '/v1/users/nobody', auth => 'hashed:sekrit-value-42')
    ->{status}, 404, 'the hashed secret authenticates');
is($t->http(GET => '/v1/users/nobody', auth => 'hashed:sekrit-value-43')
    ->{status}, 401, 'a wrong secret does not');
is($t->http(GET => '/v1/users/nobody', auth => "hashed:$hash")->{status},
    401, 'the hash itself is not a password');
unlike($t->read_file('herald.conf') =~ s/\Q$hash\E//r, qr/sekrit-value-42/,
    'the config holds no plain secret');

# ==== secrets stay out of the logs ====
$t->http(GET => '/v1/users/x', auth => 'demo:not-the-secret-xyz');
$t->http(POST => '/v1/users/x/devices', body => { platform => 'ios',
    token => 'ab' x 32 });
sleep 0.3;
my $logs = $t->error_log . $t->access_log;
unlike($logs, qr/not-the-secret-xyz|demo-secret|sekrit/, 'no secret in the logs');
unlike($logs, qr/abababababababab/, 'no device token in the logs');

# ==== slowloris: bytes trickle in, the header timeout is a total ====
{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $t->port, Proto => 'tcp') or die;
    my $t0 = time;
    my $closed;
    for my $c (split //, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaa") {
        last unless print {$s} $c;
        sleep 0.15;
        my $rin = '';
        vec($rin, fileno($s), 1) = 1;
        if (select(my $rout = $rin, undef, undef, 0)) {
            $closed = 1;
            last;
        }
        last if time - $t0 > 6;
    }
    my $answer = '';
    $s->recv($answer, 4096);
    like($answer, qr{^HTTP/1.1 408}, 'a trickling client gets 408');
    ok(time - $t0 < 3.5, sprintf('within the 1 s header timeout (%.1f s)', time - $t0));
}

# ==== oversized and malformed requests ====
{
    my $c = $t->conn;
    $c->write("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " . ('a' x 20000) . "\r\n\r\n");
    my $r = $c->read_response;
    is($r->{status}, 431, 'a 20k header: 431');
}
{
    my $c = $t->conn;
    $c->write("GET /healthz HTTP/1.1\r\nHost: x\r\n" . join('', map { "X-H$_: v\r\n" } 1 .. 80) . "\r\n");
    is($c->read_response->{status}, 431, '80 header fields: 431');
}
{
    # found by t/fuzz/http.c: a NUL byte in the head crashed the parser
    my $c = $t->conn;
    $c->write("GET /healthz HTTP/1.1\r\nX-A: a\0b\r\n\r\n");
    is($c->read_response->{status}, 400, 'a NUL byte in a header: 400');
    $c = $t->conn;
    $c->write("\0\0\r\n\r\n");
    is($c->read_response->{status}, 400, 'NUL bytes before CRLF CRLF: 400');
    is($t->http(GET => '/healthz')->{status}, 200, 'and herald is still up');
}
{
    # found by t/fuzz/json_request.c: a long non-ASCII field name, cut
    # inside a character in the error, made a 400 with an empty body
    my $k = "a" . "\xc3\xa9" x 200;
    my $r = $t->http(POST => '/v1/notifications',
        body => qq({"user_id":"u-1","$k":1}));
    $t->api_error($r, 400, 'invalid_field', undef,
        'a long non-ASCII unknown field');
    like($r->{json}{error}{field} // '', qr/^a\x{e9}+/, '... named in "field"');
    $r = $t->http(PUT => '/v1/users/u-1', body => q({"a) . ("\xc3\xa9" x 130) . q(":1}));
    $t->api_error($r, 400, 'invalid_field', undef, 'the same in a user body');
}
{
    my $c = $t->conn;
    $c->write("GET /healthz HTTP/1.1\r\nHost: x\r\n folded: yes\r\n\r\n");
    is($c->read_response->{status}, 400, 'obsolete line folding: 400');
}
{
    my $c = $t->conn;
    $c->write("POST /v1/notifications HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!");
    is($c->read_response->{status}, 400, 'conflicting Content-Length: 400');
}

# ==== store files are private ====
my $store = $t->dir . '/store';
is(sprintf('%o', (stat $store)[2] & 07777), '700', 'store directory 0700');
is(sprintf('%o', (stat "$store/meta")[2] & 07777), '600', 'store meta 0600');
is(sprintf('%o', (stat "$store/shard-000/data.mdb")[2] & 07777), '600',
    'data.mdb 0600');
is(sprintf('%o', (stat "$store/shard-000")[2] & 07777), '700',
    'shard directory 0700');

$t->stop;
done_testing;
