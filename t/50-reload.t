#!/usr/bin/perl

# SIGHUP reloads the whole configuration (issue 6 part 5): providers and
# their settings, channel routes and listeners change without a restart,
# while requests and deliveries go on; a configuration whose providers
# cannot be built, or whose new listener cannot bind, is refused whole.
#
#   path     the log provider's path changes: new deliveries go to the new
#            file, none is lost, no request fails during the reload
#   add      a new provider, and the sms channel routed to it; /metrics
#            labels stay right (counts are kept by provider name)
#   refused  an apns provider whose key_file is missing, then a log
#            provider whose file cannot be opened: refused with the reason,
#            the old providers keep delivering
#   listen   a listen line added: the new port answers; removed: it
#            refuses connections, the other port is fine; a port that is
#            taken refuses the reload
#   storm    reloads that switch providers back and forth during a burst
#            of sends: every accepted notification is delivered once
#            to one of the files, herald survives

use strict;
use warnings;
no warnings qw(uninitialized);

use POSIX ();
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use Herald::Test;

my $t = Herald::Test->new;
my $dir = $t->dir;

# a second port, free now, for the listen scenario
my ($port2, $lock2) = Herald::Test::_pick_port();

# conf(path => FILE, second => 1, listen2 => 1, bad_key => 1, bad_path => 1)
sub conf
{
    my (%o) = @_;
    my $c = $t->default_conf_text(workers => 2);
    my $path = $o{path} // 'deliveries.log';
    $c =~ s{path %%DIR%%/deliveries\.log;}{path %%DIR%%/$path;} or die;
    my $more = '';
    if ($o{second}) {
        $more .= "provider second {\n    type log;\n"
            . "    path %%DIR%%/second.log;\n}\n";
        $c =~ s/^channel sms .*$/channel sms { provider second; }/m or die;
    }
    if ($o{bad_key}) {
        $more .= <<'EOF';
provider apns_nokey {
    type apns;
    url https://127.0.0.1:9;
    team_id TEAM000001;
    key_id KEY0000001;
    key_file %%DIR%%/no-such-key.p8;
    bundle_id com.example.reload;
}
EOF
        $c =~ s/^channel push .*$/channel push { provider apns_nokey; }/m
            or die;
    }
    if ($o{bad_path}) {
        $more .= "provider broken {\n    type log;\n"
            . "    path %%DIR%%/no-such-dir/x.log;\n}\n";
        $c =~ s/^channel web .*$/channel web { provider broken; }/m or die;
    }
    $c =~ s/^(provider sink \{)/$more$1/m or die;
    $c =~ s/^(listen .*)$/$1\nlisten 127.0.0.1:$port2;/m if $o{listen2};
    $c =~ s/^listen 127\.0\.0\.1:%%PORT%%;\n//m if $o{no_listen1};
    return $c;
}

$t->write_conf(conf());
$t->run;

my $NUSERS = 20;
{
    my $c = $t->conn;
    for my $i (1 .. $NUSERS) {
        my $r = $c->request(PUT => "/v1/users/ru$i",
            body => { email => "ru$i\@example.com", phone => "+1555000$i" });
        die "user ru$i: $r->{status}" unless $r->{status} =~ /^20[01]$/;
    }
    $c->close;
}

# ---- helpers ---------------------------------------------------------------

# Waits for "configuration reloaded" or "reload refused" after log offset
# OFF; returns the line.
sub reloaded
{
    my ($off) = @_;
    my $line;
    $t->wait_for(sub {
        my $s = substr($t->error_log, $off);
        ($line) = $s =~ /^(.*(?:configuration reloaded|reload refused).*)$/m;
        $line;
    }, 10, 0.05);
    return $line // '';
}

sub hup
{
    my (%o) = @_;
    my $off = length $t->error_log;
    $t->write_conf(conf(%o));
    kill 'HUP', $t->pid;
    return reloaded($off);
}

# A sender in a child process: N notifications to CHANNELS, one every
# PAUSE s; ids of the 202s to acked-TAG, anything else to acked-TAG.err.
sub start_client
{
    my ($tag, $n, $channels, $pause) = @_;
    my $file = "$dir/acked-$tag";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $SIG{PIPE} = 'IGNORE';
        open(my $ids, '>>', $file) or POSIX::_exit(2);
        open(my $err, '>>', "$file.err") or POSIX::_exit(2);
        my $c = $t->conn(timeout => 20);
        for my $j (1 .. $n) {
            my $r = $c->request(POST => '/v1/notifications', body => {
                user_id => 'ru' . (1 + $j % $NUSERS), channels => $channels,
                title => $tag, body => "$tag $j" });
            if ($r->{status} == 202 && defined $r->{json}{id}) {
                syswrite($ids, "$r->{json}{id}\n");
            } else {
                syswrite($err, "$j $r->{status} "
                    . ($r->{error} // $r->{body}) . "\n");
                $c->close;
                $c = $t->conn(timeout => 20);
            }
            sleep $pause if $pause;
        }
        $c->close;
        POSIX::_exit(0);
    }
    return { pid => $pid, file => $file, tag => $tag };
}

sub reap
{
    my ($cl) = @_;
    my $deadline = time + 60;
    while (time < $deadline) {
        return if waitpid($cl->{pid}, POSIX::WNOHANG()) != 0;
        sleep 0.05;
    }
    kill 'KILL', $cl->{pid};
    waitpid($cl->{pid}, 0);
}

sub acked
{
    my ($cl) = @_;
    my $s = $t->read_file($cl->{file});
    $s =~ s/[^\n]*\z//;
    return split /\n/, $s;
}

sub errors
{
    my ($cl) = @_;
    return grep { length } split /\n/, $t->read_file("$cl->{file}.err");
}

# Log lines per notification id, over every FILE.
sub lines_by_id
{
    my (@files) = @_;
    my %n;
    for my $f (@files) {
        next unless -e "$dir/$f";
        $n{$_->{notification_id}}{$f}++ for $t->deliveries($f);
    }
    return \%n;
}

# Every id of IDS has exactly one line in FILES (deliveries are
# at-least-once, but a reload alone must not repeat one); waits up to
# 20 s for the last ones.
sub all_once
{
    my ($name, $ids, @files) = @_;
    my ($n, @missing, @twice);
    $t->wait_for(sub {
        $n = lines_by_id(@files);
        @missing = grep { !$n->{$_} } @$ids;
        !@missing;
    }, 20, 0.2);
    for my $id (@$ids) {
        my $k = 0;
        $k += $_ for values %{$n->{$id} // {}};
        push @twice, $id if $k > 1;
    }
    is(scalar @missing, 0, "$name: every one of " . scalar(@$ids)
        . ' accepted notifications has its line') or diag("missing: @missing[0..4]");
    is(scalar @twice, 0, "$name: none twice") or diag("twice: @twice[0..4]");
    return $n;
}

sub metric
{
    my ($text, $re) = @_;
    my $v = 0;
    $v += $1 while $text =~ /^$re (\d+)$/mg;
    return $v;
}

# ==== path: the log provider writes to a new file =========================

{
    my $cl = start_client('path', 150, ['email'], 0.01);
    $t->wait_for(sub { acked($cl) >= 40 }, 10, 0.02);
    my $line = hup(path => 'deliveries2.log');
    like($line, qr/configuration reloaded/, 'path: reload accepted')
        or diag(substr($t->error_log, -2000));
    like($t->error_log, qr/providers rebuilt/,
        'path: the error log says the providers were rebuilt');
    unlike($t->error_log, qr/take effect on restart/,
        'path: no "take effect on restart" warning');
    reap($cl);
    my @ids = acked($cl);
    is(scalar @ids, 150, 'path: all 150 sends accepted');
    is(scalar(errors($cl)), 0, 'path: no request failed during the reload')
        or diag(join "\n", errors($cl));
    my $n = all_once('path', \@ids, 'deliveries.log', 'deliveries2.log');
    ok((grep { $n->{$_}{'deliveries.log'} } @ids)
        && (grep { $n->{$_}{'deliveries2.log'} } @ids),
        'path: deliveries before the reload in the old file, after it in '
        . 'the new one');
    # everything sent now goes to the new file only
    my $r = $t->send_note({ user_id => 'ru1', channels => ['email'],
        title => 'after', body => 'path' });
    is($r->{status}, 202, 'path: send after the reload');
    my @l = $t->wait_deliveries($r->{json}{id}, 1);
    is(scalar(grep { $_->{body} eq 'path' } $t->deliveries('deliveries2.log')),
        1, 'path: a send after the reload is in the new file');
    is(scalar(grep { $_->{body} eq 'path' } $t->deliveries('deliveries.log')),
        0, '... and not in the old one');
    my $nn = $t->wait_notification($r->{json}{id}, sub {
        !grep { $_ ne 'delivered' } $t->delivery_statuses($_[0]) });
    is($nn && $nn->{status}, 'delivered', 'path: recorded delivered');
}

# ==== add: a new provider for the sms channel ==============================

{
    my $line = hup(path => 'deliveries2.log', second => 1);
    like($line, qr/configuration reloaded/, 'add: reload accepted');
    my $r = $t->send_note({ user_id => 'ru2', channels => ['sms', 'email'],
        title => 'two', body => 'add' });
    is($r->{status}, 202, 'add: send to sms and email');
    my $id = $r->{json}{id};
    my $ok = $t->wait_for(sub {
        (grep { $_->{notification_id} eq $id } $t->deliveries('second.log'))
        && (grep { $_->{notification_id} eq $id }
            $t->deliveries('deliveries2.log'));
    }, 10);
    ok($ok, 'add: sms goes to the new provider, email to the old one');
    my @sms = grep { $_->{notification_id} eq $id }
        $t->deliveries('deliveries2.log');
    is(scalar(grep { $_->{channel} eq 'sms' } @sms), 0,
        'add: no sms in the old provider\'s file');
    my $n = $t->wait_notification($id, sub {
        !grep { $_ ne 'delivered' } $t->delivery_statuses($_[0]) });
    is($n && $n->{status}, 'delivered', 'add: both deliveries recorded');
    my %prov = map { ($_->{channel} => $_->{provider}) }
        @{$n->{deliveries} // []};
    is($prov{sms}, 'second', 'add: the sms delivery names provider second');
    is($prov{email}, 'sink', 'add: the email delivery names provider sink');

    my $m = $t->http(GET => '/metrics')->{body};
    is(metric($m, qr/herald_deliveries_total\{provider="second",channel="sms",outcome="delivered"\}/),
        1, 'add: /metrics counts the new provider under its own name');
    cmp_ok(metric($m, qr/herald_deliveries_total\{provider="sink",channel="email",outcome="delivered"\}/),
        '>=', 151, 'add: /metrics keeps the old provider\'s count over '
        . 'reloads');
    like($m, qr/herald_circuit_breaker_state\{provider="second",worker="0"\} 0/,
        'add: the new provider has a (closed) circuit breaker');
    my $s = $t->http(GET => '/v1/queues');
    ok($s->{json} && $s->{json}{providers}{second},
        'add: /v1/queues lists the new provider') or diag(explain $s->{json});
}

# ==== refused: providers that cannot be built =============================

{
    my $log0 = length $t->error_log;
    my $line = hup(path => 'deliveries2.log', second => 1, bad_key => 1);
    like($line, qr/reload refused/, 'refused: a missing key_file refuses '
        . 'the reload');
    like($line, qr/no-such-key\.p8.*herald\.conf:\d+|apns_nokey/,
        'refused: the error names the key file and herald.conf:LINE')
        or diag($line);
    note("refused: $line");

    $line = hup(path => 'deliveries2.log', second => 1, bad_path => 1);
    like($line, qr/reload refused/, 'refused: an unopenable log path '
        . 'refuses the reload');
    like($line, qr/provider "broken".*no-such-dir/,
        'refused: the error names the provider and the file') or diag($line);
    note("refused: $line");
    ok($t->running, 'refused: herald still running');

    # the old providers are in force: sms to second, email to deliveries2
    my $r = $t->send_note({ user_id => 'ru3', channels => ['sms', 'email'],
        title => 'old', body => 'refused' });
    is($r->{status}, 202, 'refused: send after the refusals');
    my $id = $r->{json}{id};
    ok($t->wait_for(sub {
        (grep { $_->{notification_id} eq $id } $t->deliveries('second.log'))
        && (grep { $_->{notification_id} eq $id }
            $t->deliveries('deliveries2.log'));
    }, 10), 'refused: the old providers keep delivering');
    # back to the accepted config on disk
    $t->write_conf(conf(path => 'deliveries2.log', second => 1));
}

# ==== listen: added, removed ==============================================

sub answers
{
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 3) or return 0;
    print $s "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    my $buf = '';
    local $SIG{ALRM} = sub { die "timeout\n" };
    eval {
        alarm 3;
        while (sysread($s, my $chunk, 4096)) { $buf .= $chunk }
        alarm 0;
    };
    alarm 0;
    close $s;
    return $buf =~ m{^HTTP/1\.1 200 } ? 1 : 0;
}

{
    ok(!answers($port2), 'listen: the second port is closed at first');
    close $lock2;    # herald binds it now
    my $line = hup(path => 'deliveries2.log', second => 1, listen2 => 1);
    like($line, qr/configuration reloaded/, 'listen: reload with a second '
        . 'listen accepted') or diag(substr($t->error_log, -2000));
    ok($t->wait_for(sub { answers($port2) }, 5), 'listen: the new port '
        . 'answers');
    ok(answers($t->port), 'listen: the first port still answers');
    # a connection opened on the first port survives its removal
    my $keep = $t->conn;
    my $r = $keep->request(GET => '/healthz');
    is($r->{status}, 200, 'listen: keep-alive connection on the first port');

    $line = hup(path => 'deliveries2.log', second => 1, listen2 => 1,
        no_listen1 => 1);
    like($line, qr/configuration reloaded/, 'listen: reload without the '
        . 'first listen accepted');
    ok($t->wait_for(sub { !answers($t->port) }, 5),
        'listen: the removed port refuses connections');
    ok(answers($port2), 'listen: the remaining port answers');
    $r = $keep->request(GET => '/healthz');
    is($r->{status}, 200, 'listen: the connection accepted on the removed '
        . 'port finishes its requests');
    $keep->close;

    # a taken port: the reload is refused whole, nothing changes
    my $squat = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => $t->port, Proto => 'tcp', Listen => 5, ReuseAddr => 1);
    ok($squat, 'listen: another process holds the first port');
    $line = hup(path => 'deliveries3.log', second => 1, listen2 => 1);
    like($line, qr/reload refused/, 'listen: a port that cannot be bound '
        . 'refuses the reload');
    like($line, qr/bind\(\) to 127\.0\.0\.1:\d+ failed/,
        'listen: the error says bind() failed, and where') or diag($line);
    close $squat;
    ok(answers($port2), 'listen: the old listener still answers');
    {
        my $c2 = Herald::Test::Conn->new(port => $port2);
        $r = $c2->request(POST => '/v1/notifications', body => {
            user_id => 'ru4', channels => ['email'], title => 'l',
            body => 'listen-refused' });
        $c2->close;
        is($r->{status}, 202, 'listen: a send on the remaining port');
        $t->wait_for(sub { grep { $_->{body} eq 'listen-refused' }
            $t->deliveries('deliveries2.log') }, 10);
    }

    # and back to the first port only
    $line = hup(path => 'deliveries2.log', second => 1);
    like($line, qr/configuration reloaded/, 'listen: back to one listen');
    ok($t->wait_for(sub { answers($t->port) }, 5), 'listen: the first port '
        . 'answers again');
    ok($t->wait_for(sub { !answers($port2) }, 5), 'listen: the second port '
        . 'is closed again');
    is(scalar(grep { $_->{body} eq 'listen-refused' }
        $t->deliveries('deliveries2.log')), 1,
        'listen: the refused reload changed no provider (old file)');
    my @d3 = $t->deliveries('deliveries3.log');
    is(scalar @d3, 0, 'listen: nothing went to the refused reload\'s '
        . 'provider');
}

# ==== storm: providers switched back and forth under load ===================

{
    my @cl = map { start_client("storm$_", 200, ['email', 'sms'], 0.002) }
        1 .. 3;
    $t->wait_for(sub { acked($cl[0]) >= 10 }, 10, 0.02);
    my $n = 0;
    for my $i (1 .. 20) {
        my %o = $i % 2 ? (path => 'deliveries3.log')
            : (path => 'deliveries2.log', second => 1);
        $t->write_conf(conf(%o));
        kill('HUP', $t->pid) or last;
        $n++;
        sleep 0.1;
    }
    reap($_) for @cl;
    is($n, 20, 'storm: 20 reloads sent');
    ok($t->running, 'storm: herald survived') or diag(
        substr($t->stderr_log(since_start => 1), 0, 3000));
    my @ids = map { acked($_) } @cl;
    is(scalar @ids, 600, 'storm: all 600 sends accepted');
    my @err = map { errors($_) } @cl;
    is(scalar @err, 0, 'storm: no request failed') or diag("@err[0..4]");
    # each notification has an email and an sms delivery
    my $lines = lines_by_id('deliveries.log', 'deliveries2.log',
        'deliveries3.log', 'second.log');
    my (@short);
    $t->wait_for(sub {
        $lines = lines_by_id('deliveries.log', 'deliveries2.log',
            'deliveries3.log', 'second.log');
        @short = grep {
            my $k = 0;
            $k += $_ for values %{$lines->{$_} // {}};
            $k < 2;
        } @ids;
        !@short;
    }, 30, 0.25);
    is(scalar @short, 0, 'storm: every accepted notification has both '
        . 'lines') or diag("short: @short[0..4]");
    my @extra = grep {
        my $k = 0;
        $k += $_ for values %{$lines->{$_} // {}};
        $k > 2;
    } @ids;
    is(scalar @extra, 0, 'storm: no delivery written twice');
    # and the store agrees
    my @bad;
    my $c = $t->conn;
    for my $id (@ids[0 .. 59]) {
        my $r = $c->request(GET => "/v1/notifications/$id");
        push @bad, "$id: $r->{json}{status}"
            unless $r->{status} == 200 && $r->{json}{status} eq 'delivered';
    }
    $c->close;
    is(scalar @bad, 0, 'storm: recorded delivered') or diag("@bad[0..4]");
}

$t->stop;
ok(!$t->{stop_timed_out}, 'herald exited on SIGTERM');
is($t->exit_status, 0, 'exit status 0');
my @bad = grep { /\[(?:alert|crit)\]|AddressSanitizer|runtime error/ }
    split /\n/, $t->error_log . $t->stderr_log;
is(scalar @bad, 0, 'no alert, crit or sanitizer report') or diag("@bad");

done_testing();
