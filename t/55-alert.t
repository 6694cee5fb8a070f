#!/usr/bin/perl
# The alert webhook (issue 6, item 3): every circuit breaker transition is
# POSTed to alert_webhook as JSON, signed with alert_webhook_secret. A
# faulty fake APNs answers 500 until the breaker opens, then recovers:
# the receiver must get "closed -> open", then "half-open -> closed". A
# receiver that never answers must not slow deliveries. Bad URLs are
# refused with FILE:LINE. A reload moves the alerts to a new URL, or ends
# them.

use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use Digest::SHA qw(hmac_sha256_hex);
use Time::HiRes qw(time sleep);
use lib 't/lib';
use Herald::Test;
use Herald::Push;

my $why = Herald::Push::have_tools();
plan(skip_all => $why) if $why;

my $keeper = Herald::Test->new;
my $dir = $keeper->dir;
my $pki = Herald::Push::make_pki($dir);
my $key = Herald::Push::make_apns_key($dir, 'k1');
my $fake = Herald::Push->start_faulty_fake('apns', $dir, '--cert',
    $pki->{cert}, '--key', $pki->{key}, '--jwt',
    "KEY0000001:TEAM000001:$key->{pub}");
my $SECRET = 'alert-secret-1';

# ==== configuration errors ================================================

{
    my $tc = Herald::Test->new;
    for my $bad ('ftp://example.com/x', 'http://', 'https:///path') {
        $tc->write_conf($tc->default_conf_text(
            extra => "alert_webhook $bad;"));
        my ($rc, $out) = $tc->test_conf;
        isnt($rc, 0, "alert_webhook $bad: refused");
        like($out, qr/"alert_webhook" directive expects an http:\/\/ or https:\/\/ URL in \S+herald\.conf:\d+/,
            "alert_webhook $bad: the message names FILE:LINE");
    }
    $tc->write_conf($tc->default_conf_text(extra =>
        "alert_webhook https://alerts.example.com/hook;\n"
        . "alert_webhook_secret $SECRET;\n"));
    my ($rc, $out) = $tc->test_conf;
    is($rc, 0, 'alert_webhook with a secret: accepted') or diag($out);
}

# ==== a receiver ==========================================================

# answers 200 to each POST and appends "signature TAB body" to FILE;
# returns its port
my @receivers;
sub start_receiver
{
    my ($file) = @_;
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
        Listen => 16, ReuseAddr => 1) or die "listen: $!";
    my $port = $srv->sockport;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        while (my $c = $srv->accept) {
            my ($head, $line) = ('');
            while (defined($line = <$c>)) { last if $line eq "\r\n"; $head .= $line; }
            if ($head) {
                my ($len) = $head =~ /Content-Length: (\d+)/i;
                my ($sig) = $head =~ /X-Herald-Signature: (\S+)/i;
                my $body = '';
                read($c, $body, $len // 0);
                open(my $f, '>>', $file);
                print $f ($sig // '-') . "\t$body\n";
                close $f;
                print $c "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            }
            close $c;
        }
        POSIX::_exit(0);
    }
    close $srv;
    push @receivers, $pid;
    return $port;
}
END { kill 'TERM', @receivers if @receivers; }

my $rport = start_receiver("$dir/alerts.log");

# a receiver that takes connections and never answers
my $hole = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
    Listen => 128, ReuseAddr => 1) or die "listen: $!";

sub herald_conf
{
    my ($t, $alert) = @_;
    my $port = $fake->port;
    my $conf = $t->default_conf_text(workers => 1, extra => $alert);
    $conf =~ s/^channel push .*$/channel push { provider apns_a; }/m;
    $conf =~ s/^(provider sink \{)/provider apns_a {
    type apns;
    url https:\/\/127.0.0.1:$port;
    team_id TEAM000001;
    key_id KEY0000001;
    key_file $key->{p8};
    bundle_id com.example.alert;
    ca_file $pki->{ca};
    timeout 2s;
    retry attempts 50 base 100ms max 300ms;
    circuit_breaker failures 3 cooldown 500ms;
}
$1/m;
    return $conf;
}

sub start_herald
{
    my ($alert) = @_;
    my $t = Herald::Test->new;
    $t->write_conf(herald_conf($t, $alert));
    $t->run;
    return $t;
}

# the alerts in FILE (default: the first receiver's)
sub alerts
{
    my ($file) = @_;
    my @a;
    open(my $f, '<', $file // "$dir/alerts.log") or return ();
    while (<$f>) {
        chomp;
        my ($sig, $body) = split /\t/, $_, 2;
        push @a, { sig => $sig, body => $body,
            json => Herald::Test->json_decode($body) };
    }
    return @a;
}

sub push_users
{
    my ($t, $tag, $n) = @_;
    for my $i (1 .. $n) {
        $t->put_user("$tag-$i", {});
        $t->add_device("$tag-$i", { platform => 'ios',
            token => Herald::Test->ios_token("$tag-$i") });
        $t->send_note({ user_id => "$tag-$i", channels => ['push'],
            title => 'T', body => "b $i" });
    }
}

# ==== open, then closed again =============================================

{
    $fake->set_mode('500');
    my $t = start_herald("alert_webhook http://127.0.0.1:$rport/alerts;\n"
        . "alert_webhook_secret $SECRET;\n");
    push_users($t, 'o', 5);
    ok($t->wait_for(sub { grep { ($_->{json}{to} // '') eq 'open' } alerts() },
        15), 'an "open" alert arrived while the provider fails');
    $fake->set_mode('ok');
    ok($t->wait_for(sub { grep { ($_->{json}{to} // '') eq 'closed' } alerts() },
        15), 'a "closed" alert arrived after recovery');

    my @a = alerts();
    my ($open) = grep { $_->{json}{to} eq 'open' } @a;
    my ($closed) = grep { $_->{json}{to} eq 'closed' } @a;
    $open //= { json => {} };
    $closed //= { json => {} };
    is($open->{json}{type}, 'circuit_breaker', 'type circuit_breaker');
    is($open->{json}{provider}, 'apns_a', 'the provider named');
    is($open->{json}{worker}, 0, 'the worker named');
    is($open->{json}{from}, 'closed', 'open: from closed');
    cmp_ok($open->{json}{failures} // 0, '>=', 3, 'open: after >= 3 failures');
    like($open->{json}{at} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/,
        'at: RFC 3339');
    is($closed->{json}{from}, 'half-open', 'closed: from half-open (the probe)');
    my @order = map { $_->{json}{to} } @a;
    my ($io) = grep { $order[$_] eq 'open' } 0 .. $#order;
    my ($ic) = grep { $order[$_] eq 'closed' } 0 .. $#order;
    ok(defined $io && defined $ic && $io < $ic, 'in order: open before closed')
        or diag("@order");
    my $bad = grep { $_->{sig} ne 'sha256=' . hmac_sha256_hex($_->{body}, $SECRET) }
        @a;
    is($bad, 0, 'every alert carries a valid X-Herald-Signature')
        or diag(explain \@a);
    my ($m, $sent);
    $t->wait_for(sub {
        $m = $t->http(GET => '/metrics');
        ($sent) = $m->{body} =~ /^herald_alerts_total\{result="sent"\} (\d+)/m;
        ($sent // -1) == scalar alerts();
    }, 5);
    is($sent, scalar alerts(), 'herald_alerts_total{result="sent"} counts them');
    like($m->{body}, qr/^herald_alerts_total\{result="dropped"\} 0$/m,
        'none dropped');
    $t->stop;
}

# ==== a dead receiver does not slow deliveries ============================

{
    $fake->set_mode('500');
    my $t = start_herald("alert_webhook http://127.0.0.1:@{[ $hole->sockport ]}/a;\n");
    push_users($t, 'd', 5);
    ok($t->wait_for(sub {
        $t->error_log =~ /circuit breaker of provider "apns_a" closed -> open/
    }, 15), 'dead receiver: the breaker opened (its alert hangs)');

    # the sms channel goes to the log provider: 50 sends, timed
    my $t0 = time;
    my @nid;
    for my $i (1 .. 50) {
        $t->put_user("s-$i", { phone => sprintf('+1415555%04d', $i) });
        my $r = $t->send_note({ user_id => "s-$i", channels => ['sms'],
            body => "sms $i" });
        push @nid, $r->{json}{id} if $r->{status} == 202;
    }
    is(scalar @nid, 50, 'dead receiver: 50 sms accepted');
    ok($t->wait_for(sub { scalar(grep { $_->{channel} eq 'sms' }
        $t->deliveries) >= 50 }, 10), 'dead receiver: all 50 delivered');
    my $took = time - $t0;
    cmp_ok($took, '<', 5, sprintf('dead receiver: no slower (%.2f s for '
        . '50 users and sends)', $took));

    # the push deliveries go on too once the provider recovers
    $fake->set_mode('ok');
    ok($t->wait_for(sub {
        $t->error_log =~ /circuit breaker of provider "apns_a" half-open -> closed/
    }, 15), 'dead receiver: the breaker closed again');
    my $m = $t->http(GET => '/metrics');
    like($m->{body}, qr/^herald_alerts_total\{result="sent"\} 0$/m,
        'dead receiver: nothing sent');
    $t->stop;
}

# ==== a reload moves the alerts ==========================================
# alert_webhook at A, the breaker opens: A hears it. SIGHUP to B: the
# recovery is heard at B, not at A. SIGHUP without alert_webhook: the next
# outage is heard by no one, and nothing fails.

sub hup
{
    my ($t, $alert) = @_;
    my $off = length $t->error_log;
    my $line;
    $t->write_conf(herald_conf($t, $alert));
    kill 'HUP', $t->pid;
    $t->wait_for(sub {
        ($line) = substr($t->error_log, $off)
            =~ /^(.*(?:configuration reloaded|reload refused).*)$/m;
        $line;
    }, 10, 0.05);
    # the main thread logs once the workers' messages are sent
    sleep 0.3;
    return $line // '';
}

sub to { my ($want, @a) = @_; scalar grep { ($_->{json}{to} // '') eq $want } @a }

{
    my ($fa, $fb) = ("$dir/alerts-a.log", "$dir/alerts-b.log");
    my $pa = start_receiver($fa);
    my $pb = start_receiver($fb);
    $fake->set_mode('500');
    my $t = start_herald("alert_webhook http://127.0.0.1:$pa/a;\n"
        . "alert_webhook_secret $SECRET;\n");
    push_users($t, 'ra', 5);
    ok($t->wait_for(sub { to('open', alerts($fa)) }, 15),
        'reload: the "open" alert arrived at A');

    like(hup($t, "alert_webhook http://127.0.0.1:$pb/b;\n"
            . "alert_webhook_secret $SECRET-b;\n"),
        qr/configuration reloaded/, 'reload: URL changed to B, accepted');
    my $at_a = () = alerts($fa);
    $fake->set_mode('ok');
    ok($t->wait_for(sub { to('closed', alerts($fb)) }, 15),
        'reload: the "closed" alert arrived at B');
    is(to('closed', alerts($fa)), 0, 'reload: and not at A');
    my @b = alerts($fb);
    my $bad = grep { $_->{sig} ne 'sha256='
        . hmac_sha256_hex($_->{body}, "$SECRET-b") } @b;
    is($bad, 0, 'reload: B\'s alerts are signed with the new secret');
    ok($t->wait_for(sub { $t->error_log =~ /half-open -> closed/ }, 5),
        'reload: the breaker closed');

    like(hup($t, ''), qr/configuration reloaded/,
        'reload: alert_webhook removed, accepted');
    my ($na, $nb) = (scalar(() = alerts($fa)), scalar(() = alerts($fb)));
    my $off = length $t->error_log;
    $fake->set_mode('500');
    push_users($t, 'rb', 5);
    ok($t->wait_for(sub { substr($t->error_log, $off)
        =~ /circuit breaker of provider "apns_a" closed -> open/ }, 15),
        'no alert_webhook: the breaker opened again');
    $fake->set_mode('ok');
    ok($t->wait_for(sub { substr($t->error_log, $off)
        =~ /circuit breaker of provider "apns_a" half-open -> closed/ }, 15),
        'no alert_webhook: and closed again');
    sleep 0.5;
    is(scalar(() = alerts($fa)), $na, 'no alert_webhook: nothing at A');
    is(scalar(() = alerts($fb)), $nb, 'no alert_webhook: nothing at B');
    unlike(substr($t->error_log, $off), qr/\[(?:error|crit|alert|emerg)\][^\n]*webhook/,
        'no alert_webhook: no error logged') or diag(substr($t->error_log, $off));
    $t->stop;
}

done_testing;
