#!/usr/bin/perl
# TLS on the ingest listener: "listen ... ssl" with modern defaults, next
# to a plain listener; curl verifies the certificate.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Herald::Test;

Herald::Test->require_binary;
plan skip_all => 'openssl and curl are needed'
    unless `which openssl` && `which curl`;

my $t = Herald::Test->new;
my $dir = $t->dir;
system("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
    . "-keyout $dir/key.pem -out $dir/cert.pem -days 2 -subj /CN=localhost "
    . "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null") == 0
    or BAIL_OUT('openssl req failed');

my ($tls_port, $lock) = Herald::Test::_pick_port();
$t->default_conf(extra => <<"CONF");
listen 127.0.0.1:$tls_port ssl;
ssl_certificate $dir/cert.pem;
ssl_certificate_key $dir/key.pem;
CONF
$t->run;

my $url = "https://127.0.0.1:$tls_port";
my $out = `curl -s --cacert $dir/cert.pem -u demo:demo-secret -X PUT $url/v1/users/tls1 -d '{"email":"t\@example.com"}' -w ' %{http_code} %{ssl_verify_result}'`;
like($out, qr/"id":"tls1".* 201 0$/, 'PUT over verified TLS: 201');
$out = `curl -s --cacert $dir/cert.pem -u demo:demo-secret $url/v1/users/tls1 -w ' %{http_code}'`;
like($out, qr/ 200$/, 'GET over TLS on a kept-alive pool');
is($t->http(GET => '/v1/users/tls1')->{status}, 200,
    'the plain listener still works');

$out = `curl -s --cacert $dir/cert.pem --tls-max 1.1 $url/healthz -o /dev/null -w '%{http_code}' 2>&1`;
isnt($out, '200', 'TLS 1.1 is refused');
$out = `curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$tls_port/healthz 2>&1`;
isnt($out, '200', 'plain HTTP on the TLS port gets no answer');

# a reload reads the certificate anew: a new one serves new connections
system("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
    . "-keyout $dir/key2.pem -out $dir/cert2.pem -days 2 -subj /CN=localhost "
    . "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null") == 0
    or BAIL_OUT('openssl req failed');
{
    my $log0 = length $t->error_log;
    $t->default_conf(extra => <<"CONF");
listen 127.0.0.1:$tls_port ssl;
ssl_certificate $dir/cert2.pem;
ssl_certificate_key $dir/key2.pem;
CONF
    kill 'HUP', $t->pid;
    ok($t->wait_for(sub {
        substr($t->error_log, $log0) =~ /configuration reloaded/ }, 10),
        'reload with a new certificate accepted');
    $out = `curl -s --cacert $dir/cert2.pem $url/healthz -o /dev/null -w '%{http_code} %{ssl_verify_result}' 2>&1`;
    is($out, '200 0', 'after the reload the new certificate verifies');
    $out = `curl -s --cacert $dir/cert.pem $url/healthz -o /dev/null -w '%{http_code}' 2>&1`;
    isnt($out, '200', '... and the old one no longer does');

    # a key that does not match: refused, the new certificate stays
    $log0 = length $t->error_log;
    $t->default_conf(extra => <<"CONF");
listen 127.0.0.1:$tls_port ssl;
ssl_certificate $dir/cert2.pem;
ssl_certificate_key $dir/key.pem;
CONF
    kill 'HUP', $t->pid;
    my $line = $t->wait_for(sub {
        substr($t->error_log, $log0) =~ /^(.*reload refused.*)$/m && $1 }, 10);
    like($line // '', qr/cannot load .*cert2\.pem/,
        'a mismatched key refuses the reload, saying why');
    $out = `curl -s --cacert $dir/cert2.pem $url/healthz -o /dev/null -w '%{http_code}' 2>&1`;
    is($out, '200', 'the certificate in force stays');
}

# a config with "ssl" but no certificate is refused with file:line
my $t2 = Herald::Test->new;
$t2->default_conf(extra => "listen 127.0.0.1:$tls_port ssl;");
my ($rc, $msg) = $t2->test_conf;
isnt($rc, 0, 'ssl without a certificate: -t fails');
like($msg, qr/needs "ssl_certificate"/, 'and says why');

$t->stop;
done_testing;
