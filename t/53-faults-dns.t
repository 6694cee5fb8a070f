#!/usr/bin/perl

# DNS failure, then recovery (issue 6, part 6).  The APNs provider's url
# names a host that cannot resolve (https://apns.invalid:PORT, RFC 6761):
# deliveries must retry (not fail, not vanish) while the name does not
# resolve; then the url is changed to https://localhost:PORT (resolved by
# c-ares from /etc/hosts; the test certificate covers "localhost").
#
# What herald can and cannot do here (checked below, as of this test):
#  - it resolves provider host names with c-ares on each (re)connect, so a
#    name that starts resolving later is picked up without a restart;
#    but a name that is simply wrong stays wrong until the url changes;
#  - SIGHUP with a changed url rebuilds the provider (issue 6 part 5): the
#    deliveries that waited go to the new url without a restart;
#  - a restart with the working name delivers everything that waited.

use strict;
use warnings;
no warnings qw(uninitialized);

use Test::More;
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(sleep time);
use lib 't/lib';
use Herald::Test;
use Herald::Push;

my $why = Herald::Push::have_tools();
plan(skip_all => $why) if $why;

my $ATTEMPTS = 60;

my $t = Herald::Test->new;
my $dir = $t->dir;
my $pki = Herald::Push::make_pki($dir);
my $key = Herald::Push::make_apns_key($dir, 'k1');
my $fake = Herald::Push->start_faulty_fake('apns', $dir,
    '--cert', $pki->{cert}, '--key', $pki->{key},
    '--jwt', "KEY0000001:TEAM000001:$key->{pub}",
    '--initial-streams', 1000, '--max-streams', 1000);

sub conf_text
{
    my ($host) = @_;
    my $c = $t->default_conf_text(workers => 2);
    my $port = $fake->port;
    my $provider = <<"EOF";
provider apns_dns {
    type apns;
    url https://$host:$port;
    team_id TEAM000001;
    key_id KEY0000001;
    key_file $key->{p8};
    bundle_id com.example.dns;
    ca_file $pki->{ca};
    connections 1;
    timeout 2s;
    retry attempts $ATTEMPTS base 200ms max 1s;
    circuit_breaker failures 5 cooldown 500ms;
}
EOF
    $c =~ s/^channel push .*$/channel push { provider apns_dns; }/m or die;
    $c =~ s/^(provider sink \{)/$provider\n$1/m;
    return $c;
}

sub tok { my ($s) = @_; 'd' . substr(sha256_hex("dns-$s"), 1) }

sub deliveries
{
    my ($ids) = @_;
    my $c = $t->conn;
    my %d;
    for my $id (@$ids) {
        my $r = $c->request(GET => "/v1/notifications/$id");
        $d{$id} = $r->{status} == 200 ? $r->{json}{deliveries}[0]
            : { status => "HTTP $r->{status}" };
    }
    $c->close;
    return \%d;
}

sub hist
{
    my ($d) = @_;
    my %h;
    $h{$_->{status}}++ for values %$d;
    return join(', ', map { "$_ $h{$_}" } sort keys %h);
}

$t->write_conf(conf_text('apns.invalid'));
my ($rc, $out) = $t->test_conf;
is($rc, 0, 'herald -t accepts a url whose host does not resolve')
    or diag($out);
$t->run;

# ==== the name does not resolve: deliveries wait and retry ================

my @ids;
{
    my $c = $t->conn;
    for my $i (1 .. 20) {
        $c->request(PUT => "/v1/users/dns$i", body => {});
        $c->request(POST => "/v1/users/dns$i/devices",
            body => { platform => 'ios', token => tok($i) });
        my $r = $c->request(POST => '/v1/notifications', body => {
            user_id => "dns$i", channels => ['push'], title => 'dns',
            body => "dns $i" });
        push @ids, $r->{json}{id} if $r->{status} == 202;
    }
    $c->close;
}
is(scalar @ids, 20, '20 accepted');

my $d;
ok($t->wait_for(sub {
    $d = deliveries(\@ids);
    grep { ($_->{last_error} // '') ne '' } values %$d;
}, 15, 0.25), 'a delivery attempt failed') or diag(explain $d);
my ($err) = grep { length } map { $_->{last_error} } values %$d;
note("last_error: $err");
like($err // '', qr/resolv|not found|NXDOMAIN|DNS|apns\.invalid/i,
    'the error says the name did not resolve');
sleep 3;
$d = deliveries(\@ids);
my @done = grep { $_->{status} =~ /^(delivered|failed|expired)$/ } values %$d;
is(scalar @done, 0, 'nothing delivered or failed while the name does not '
    . 'resolve (' . hist($d) . ')') or diag(explain $done[0]);
my $n404 = grep { $_->{status} =~ /^HTTP/ } values %$d;
is($n404, 0, 'every accepted notification is still known');
is(scalar $fake->requests, 0, 'nothing reached the fake');
my @dns_lines = grep { /apns\.invalid|resolv/i } split /\n/, $t->error_log;
ok(@dns_lines, 'the error log names the failing host')
    or diag($t->error_log);
note("error log: $dns_lines[0]") if @dns_lines;

# ==== SIGHUP with a working name ==========================================

{
    my $log0 = length $t->error_log;
    $t->write_conf(conf_text('localhost'));
    kill 'HUP', $t->pid;
    ok($t->wait_for(sub {
        substr($t->error_log, $log0) =~ /configuration reloaded/ }, 10),
        'reload with url https://localhost:PORT accepted');
    my $delivered = $t->wait_for(sub {
        my $x = deliveries(\@ids);
        !grep { $_->{status} ne 'delivered' } values %$x;
    }, 8, 0.5);
    my $after = substr($t->error_log, $log0);
    ok($delivered, 'delivered after the reload, without a restart')
        or diag("error log after the reload:\n$after");
    like($after, qr/providers rebuilt/, 'the error log says the providers '
        . 'were rebuilt');
}

# ==== restart with the working name =======================================

$t->stop;
ok(!$t->{stop_timed_out}, 'herald stopped');
$t->write_conf(conf_text('localhost'));
$t->run;
my $all = $t->wait_for(sub {
    $d = deliveries(\@ids);
    !grep { $_->{status} ne 'delivered' } values %$d;
}, 30, 0.25);
ok($all, 'after a restart with https://localhost:PORT all 20 are delivered')
    or diag(hist($d));
my $max = 0;
for (values %$d) { $max = $_->{attempts} if ($_->{attempts} // 0) > $max }
cmp_ok($max, '<=', $ATTEMPTS, "attempts within the policy (max $max)");
my $acc = $fake->accepted_by_id;
my @missing = grep { !$acc->{Herald::Push::apns_id($d->{$_}{id})} } @ids;
is(scalar @missing, 0, 'the fake accepted every one');
my @dups = grep { $acc->{$_} > 1 } keys %$acc;
diag('duplicates at the fake: ' . scalar(@dups));
pass('duplicates counted (allowed, at-least-once)');

$t->stop;
ok(!$t->{stop_timed_out}, 'herald exited on SIGTERM');
unlike($t->error_log, qr/\[(?:alert|crit)\]/, 'no alert/crit in the error log');
$fake->stop;

done_testing();
