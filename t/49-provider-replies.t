#!/usr/bin/perl
# Provider answers that t/fuzz/provider_response.c found herald mishandling,
# sent by a raw HTTP/1.1 peer as a SendGrid relay: a NUL byte in the status
# line (it crashed the HTTP/1.1 client) and an X-RateLimit-Reset too large
# for milliseconds (signed overflow: an abort under SANITIZE=1). Herald
# must answer each with a retry and stay up.
# (and one found by reading: see utf8 below)

use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use POSIX ();
use lib 't/lib';
use Herald::Test;

Herald::Test->require_binary;

my %reply = (
    'nul@' => "HTTP/1.1 400 B\0\r\nContent-Length: 0\r\n\r\n",
    'reset@' => "HTTP/1.1 429 Too Many Requests\r\n"
        . "X-RateLimit-Reset: 99999999999999999999\r\n"
        . "Content-Length: 0\r\n\r\n",
);
# not from the fuzzer: a long non-ASCII error, cut inside a character by
# the detail buffer, was refused by jansson and the last_error lost
my $msg = "a" . "\xc3\xa9" x 200;
$reply{'utf8@'} = "HTTP/1.1 400 Bad Request\r\nContent-Length: "
    . (length($msg) + 27) . "\r\n\r\n{\"errors\":[{\"message\":\"$msg\"}]}";
my $ok = "HTTP/1.1 202 Accepted\r\nX-Message-Id: m-1\r\nContent-Length: 0\r\n\r\n";

my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
    Listen => 16, ReuseAddr => 1) or die "listen: $!";
my $port = $srv->sockport;
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    while (my $c = $srv->accept) {
        my $buf = '';
        while ($buf !~ /\r\n\r\n/) {
            last unless sysread($c, $buf, 4096, length $buf);
        }
        my ($len) = $buf =~ /^Content-Length:\s*(\d+)/mi;
        $len //= 0;
        my $body = (split /\r\n\r\n/, $buf, 2)[1] // '';
        while (length $body < $len) {
            last unless sysread($c, $body, $len - length $body, length $body);
        }
        my ($k) = grep { index($body, $_) >= 0 } keys %reply;
        syswrite($c, defined $k ? $reply{$k} : $ok);
        close $c;
    }
    POSIX::_exit(0);
}
close $srv;

my $t = Herald::Test->new;
my $c = $t->default_conf_text(workers => 1);
$c =~ s/^channel email .*$/channel email { provider sg; }/m;
$c =~ s/^(provider sink \{)/provider sg {
    type sendgrid;
    url http:\/\/127.0.0.1:$port;
    api_key SG.test;
    from alerts\@example.org;
    timeout 3s;
    retry attempts 1;
}
$1/m;
$t->write_conf($c);
$t->run;

for my $who ('nul', 'reset', 'utf8', 'ok') {
    my $uid = "u-$who";
    $t->put_user($uid, { email => "$who\@example.net" });
    my $r = $t->send_note({ user_id => $uid, channels => ['email'],
        email => { subject => 'Hi', text => 'Hello' } });
    is($r->{status}, 202, "$who: accepted");
    my $nid = $r->{json} && $r->{json}{id};
    my $n = $t->wait_notification($nid, sub {
        my @s = $t->delivery_statuses($_[0]);
        @s && ($s[0] eq 'delivered' || $s[0] eq 'failed');
    }, 15);
    my $d = $n && $n->{deliveries} ? $n->{deliveries}[0] : {};
    if ($who eq 'ok') {
        is($d->{status}, 'delivered', 'a plain 202 is delivered')
            or diag(explain $n);
        next;
    }
    is($d->{status}, 'failed', "$who: a retry, then failed (attempts 1)")
        or diag(explain $n);
    like($d->{last_error} // '', { nul => qr/bad response head/,
        reset => qr/sendgrid 429/, utf8 => qr/^sendgrid 400 a\x{e9}+/ }->{$who},
        "$who: last_error");
    is($t->http(GET => '/healthz')->{status}, 200, "$who: herald is up");
}

$t->stop;
kill 'TERM', $pid;
waitpid($pid, 0);
done_testing;
