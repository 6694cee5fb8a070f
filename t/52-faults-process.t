#!/usr/bin/perl

# Process faults (issue 6, parts 5 and 6) while a client keeps sending push
# notifications to the fake APNs (t/fake/apns.c with the fault control of
# Herald::Push::start_faulty_fake; 30 ms latency so requests are in
# flight).  One user in five has a token the fake always answers 500
# ("e500...": retried, then dead-lettered after `attempts`), one in five
# a token answered 500 once ("0500...": delivered on a retry), so retries
# are pending whenever herald is hit:
#
#   kill   SIGKILL mid-burst, restart on the same store
#   hup    SIGHUP with a valid config (log level info -> debug), then with
#          a broken one (a stray "}"): refused with file:line, the old
#          configuration stays, nothing lost
#   hupstorm  30 SIGHUPs during a burst, each rebuilding the APNs
#          provider (its connection count changes) while deliveries are
#          in flight on the old one: none lost, herald survives
#   quit   SIGQUIT mid-burst: exits 0, what was accepted is delivered or
#          still queued, and delivered after the restart
#   term   SIGTERM mid-burst: exits promptly, the store is consistent
#
# In each: every 202 ends delivered or dead-lettered exactly as the policy
# says; duplicates at the fake (same apns-id accepted twice) are counted
# and printed.

use strict;
use warnings;
no warnings qw(uninitialized);

use POSIX ();
use Test::More;
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(sleep time);
use lib 't/lib';
use Herald::Test;
use Herald::Push;

my $why = Herald::Push::have_tools();
plan(skip_all => $why) if $why;

my $ATTEMPTS = 4;
my $NUSERS = 40;

my $t = Herald::Test->new;
my $dir = $t->dir;
my $pki = Herald::Push::make_pki($dir);
my $key = Herald::Push::make_apns_key($dir, 'k1');
my $fake = Herald::Push->start_faulty_fake('apns', $dir,
    '--cert', $pki->{cert}, '--key', $pki->{key},
    '--jwt', "KEY0000001:TEAM000001:$key->{pub}",
    '--initial-streams', 1000, '--max-streams', 1000, '--latency-ms', 30);

sub conf_text
{
    my (%o) = @_;
    my $level = $o{level} // 'info';
    my $conns = $o{conns} // 2;
    my $extra = $o{new_key}
        ? "api_key reloaded {\n    secret reloaded-secret;\n    scopes send users read;\n}\n"
        : '';
    my $c = $t->default_conf_text(workers => 2, extra => $extra);
    $c =~ s{^error_log (\S+) info;}{error_log $1 $level;}m or die;
    my $port = $fake->port;
    my $provider = <<"EOF";
provider apns_p {
    type apns;
    url https://127.0.0.1:$port;
    team_id TEAM000001;
    key_id KEY0000001;
    key_file $key->{p8};
    bundle_id com.example.p;
    ca_file $pki->{ca};
    connections $conns;
    timeout 2s;
    retry attempts $ATTEMPTS base 300ms max 800ms;
    circuit_breaker failures 1000 cooldown 1s;
}
EOF
    $c =~ s/^channel push .*$/channel push { provider apns_p; }/m or die;
    $c =~ s/^(provider sink \{)/$provider\n$1/m;
    return $c;
}
$t->write_conf(conf_text());
$t->run;

# ==== helpers =============================================================

sub tok
{
    my ($prefix, $seed) = @_;
    return $prefix . substr(sha256_hex("apns-$seed"), length $prefix);
}

{
    my $c = $t->conn;
    for my $i (1 .. $NUSERS) {
        my $prefix = $i % 5 == 0 ? 'e500' : $i % 5 == 1 ? '0500' : 'a';
        $c->request(PUT => "/v1/users/pu$i", body => {});
        my $r = $c->request(POST => "/v1/users/pu$i/devices", body => {
            platform => 'ios', token => tok($prefix, "pu$i") });
        die "device pu$i: $r->{status} $r->{body}"
            unless $r->{status} =~ /^20[01]$/;
    }
    $c->close;
}

# A forked client sending up to N notifications over keep-alive, one id
# per line in FILE for each 202; it reconnects on a dropped connection
# (at most RETRIES times, 100 ms apart) and stops when herald is gone.
sub start_client
{
    my ($tag, $n, %o) = @_;
    my $file = "$dir/acked-$tag";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $SIG{PIPE} = 'IGNORE';
        open(my $ids, '>>', $file) or POSIX::_exit(2);
        open(my $err, '>>', "$file.err") or POSIX::_exit(2);
        my $c = $t->conn(timeout => 20);
        my $fails = 0;
        for my $j (1 .. $n) {
            my $u = 'pu' . (1 + $j % $NUSERS);
            my $r = $c->request(POST => '/v1/notifications', body => {
                user_id => $u, channels => ['push'], title => $tag,
                body => "$tag $j" });
            if ($r->{status} == 202 && defined $r->{json}{id}) {
                syswrite($ids, "$r->{json}{id}\n");
                sleep($o{pause}) if $o{pause};
                next;
            }
            syswrite($err, "$j $r->{status} "
                . ($r->{error} // $r->{body}) . "\n");
            if ($r->{status} == 0) {
                last if ++$fails > ($o{retries} // 0);
                $c->close;
                sleep 0.1;
                $c = $t->conn(timeout => 20);
            }
        }
        $c->close;
        POSIX::_exit(0);
    }
    return { pid => $pid, file => $file, tag => $tag };
}

sub acked
{
    my ($cl) = @_;
    my $s = $t->read_file($cl->{file});
    $s =~ s/[^\n]*\z//;
    return split /\n/, $s;
}

sub wait_acked
{
    my ($cl, $n, $timeout) = @_;
    my $deadline = time + ($timeout // 30);
    while (time < $deadline) {
        return 1 if acked($cl) >= $n;
        return 0 if waitpid($cl->{pid}, POSIX::WNOHANG()) != 0
            && acked($cl) < $n;
        sleep 0.005;
    }
    return 0;
}

sub reap_client
{
    my ($cl, $timeout) = @_;
    my $deadline = time + ($timeout // 30);
    while (time < $deadline) {
        return 1 if waitpid($cl->{pid}, POSIX::WNOHANG()) != 0;
        sleep 0.05;
    }
    kill 'KILL', $cl->{pid};
    waitpid($cl->{pid}, 0);
    diag("client $cl->{tag} killed after ${timeout}s");
    return 0;
}

sub client_errors
{
    my ($cl) = @_;
    return grep { length } split /\n/, $t->read_file("$cl->{file}.err");
}

sub terminal { my $s = shift // ''; $s eq 'delivered' || $s eq 'failed' }

# Waits until every id's delivery is terminal; returns {id => delivery}
# (status "HTTP 404" for an id herald does not know).
sub settle
{
    my ($ids, $timeout) = @_;
    my %d;
    my $c = $t->conn;
    $t->wait_for(sub {
        my $left = 0;
        for my $id (@$ids) {
            next if $d{$id} && terminal($d{$id}{status});
            my $r = $c->request(GET => "/v1/notifications/$id");
            if ($r->{status} == 0) { $c->close; $c = $t->conn; $left++; next }
            $d{$id} = $r->{status} == 200 ? $r->{json}{deliveries}[0]
                : { status => "HTTP $r->{status}" };
            $left++ unless terminal($d{$id}{status});
        }
        !$left;
    }, $timeout // 40, 0.25);
    $c->close;
    return \%d;
}

my %dups_total;

# The rule for the ids acknowledged in one scenario.
sub check_ids
{
    my ($name, $ids) = @_;
    my %uniq;
    $uniq{$_}++ for @$ids;
    my @ids = sort keys %uniq;
    is(scalar(grep { $uniq{$_} > 1 } @ids), 0, "$name: no id acked twice");
    my $d = settle(\@ids, 60);
    my (%hist, @bad);
    my $acc = $fake->accepted_by_id;
    for my $id (@ids) {
        my $x = $d->{$id} // {};
        my $st = $x->{status} // 'none';
        $hist{$st}++;
        if ($st eq 'delivered') {
            push @bad, "$id: delivered, the fake never accepted it"
                unless $acc->{Herald::Push::apns_id($x->{id})};
        } elsif ($st eq 'failed') {
            push @bad, "$id: failed: reason $x->{reason}, attempts "
                . "$x->{attempts} (policy $ATTEMPTS), $x->{last_error}"
                unless $x->{reason} eq 'attempts_exhausted'
                    && $x->{attempts} == $ATTEMPTS;
        } else {
            push @bad, "$id: ends $st";
        }
    }
    ok(!@bad, "$name: all " . scalar(@ids) . ' acked notifications end '
        . 'delivered or dead-lettered per policy')
        or diag(join("\n", explain(\%hist),
            @bad[0 .. ($#bad < 14 ? $#bad : 14)]));
    note("$name: " . join(', ', map { "$_ $hist{$_}" } sort keys %hist));
    cmp_ok($hist{delivered} // 0, '>', 0, "$name: some delivered");
    # duplicates: the same apns-id accepted twice by the fake
    my %mine = map { (Herald::Push::apns_id($d->{$_}{id} // '') => 1) } @ids;
    my @dups = grep { $mine{$_} && $acc->{$_} > 1 } sort keys %$acc;
    $dups_total{$name} = scalar @dups;
    diag("$name: duplicates at the fake: " . scalar(@dups)
        . (@dups ? ' (' . join(' ', map { "$_ x$acc->{$_}" }
            @dups[0 .. ($#dups < 4 ? $#dups : 4)]) . ')' : ''));
    pass("$name: duplicates counted (allowed, at-least-once)");
    return $d;
}

# queued deliveries of the push channel, from /v1/queues
sub push_queue
{
    my $q = $t->http(GET => '/v1/queues');
    my $c = $q->{json} && $q->{json}{channels}{push} or return undef;
    return $c->{ready} + $c->{in_flight} + $c->{scheduled};
}

# After a scenario: if herald died, say so (with its stderr: a sanitizer
# report or nothing) and start it again so the next scenarios run.
sub ensure_running
{
    my ($name) = @_;
    return 1 if $t->running;
    fail("$name: herald died: "
        . Herald::Test::_status_text($t->exit_status // 0));
    diag(substr($t->stderr_log(since_start => 1), 0, 4000));
    $t->check_sanitizer;
    $t->write_conf(conf_text());
    $t->run(timeout => 30);
    sleep 1;    # past start-up: a SIGHUP before the mask is set kills it
    return 0;
}

sub hup
{
    my $pid = $t->pid or return 0;
    return kill 'HUP', $pid;
}

sub no_alerts
{
    my ($name) = @_;
    my @l = grep { /\[(?:alert|crit)\]/ } split /\n/, $t->error_log;
    ok(!@l, "$name: no alert/crit in the error log") or diag(join("\n", @l));
}

# ==== SIGHUP as soon as herald accepts connections ========================
# (a reload sent by an init system or logrotate right after start)

{
    my $died = 0;
    my $how = '';
    for my $i (1 .. 3) {
        my $e = Herald::Test->new;
        $e->default_conf(workers => 2);
        $e->run;
        kill 'HUP', $e->pid;
        sleep 0.5;
        if (!$e->running) {
            $died++;
            $how = Herald::Test::_status_text($e->exit_status // 0);
        } else {
            $e->stop;
        }
    }
    is($died, 0, 'hup-early: a SIGHUP right after the port accepts does not '
        . 'kill herald') or diag("died $died of 3 times ($how)");
}

# ==== SIGKILL mid-burst with retries pending ===============================

{
    my $cl = start_client('kill', 400, pause => 0.01);
    ok(wait_acked($cl, 150), 'kill: 150 acked');
    # retries must be pending at the kill: queued with a due time ahead
    my $sched = 0;
    $t->wait_for(sub {
        my $q = $t->http(GET => '/v1/queues');
        $sched = $q->{json} ? $q->{json}{channels}{push}{scheduled} : 0;
        $sched > 0;
    }, 5, 0.02);
    ok($sched > 0, "kill: retries pending at the kill ($sched scheduled)");
    $t->kill9;
    ok(!$t->running, 'kill: herald SIGKILLed');
    reap_client($cl);
    my @ids = acked($cl);
    note('kill: ' . scalar(@ids) . ' acked before the kill');
    ok(eval { $t->run(timeout => 30); 1 }, 'kill: restarted on the same store')
        or diag($@);
    check_ids('kill', \@ids);
}

# ==== SIGHUP: a valid config, then a broken one, during a burst ============

{
    my $cl = start_client('hup', 500, pause => 0.004, retries => 3);
    ok(wait_acked($cl, 60), 'hup: 60 acked');
    my $log0 = length $t->error_log;
    $t->write_conf(conf_text(level => 'debug', new_key => 1));
    hup();
    ok($t->wait_for(sub {
        substr($t->error_log, $log0) =~ /configuration reloaded/ }, 10),
        'hup: the valid config was reloaded');
    my $key_ok = sub {
        $t->http(GET => '/v1/users/pu1', auth => 'reloaded:reloaded-secret')
            ->{status};
    };
    is($key_ok->(), 200, 'hup: the api_key added by the reload works');
    # herald logs at debug only when a provider connection starts: make
    # the fake reset its connections for a moment
    $fake->set_mode('reset');
    sleep 0.3;
    $fake->set_mode('ok');
    ok(wait_acked($cl, 200), 'hup: sending went on (200 acked)');
    my $after = substr($t->error_log, $log0);
    $after =~ s/\A.*?configuration reloaded[^\n]*\n//s;
    $t->wait_for(sub {
        substr($t->error_log, $log0) =~ /reloaded.*\[debug\]/s }, 5);
    like(substr($t->error_log, $log0), qr/reloaded.*\[debug\]/s,
        'hup: the new log level (debug) is in force');

    # broken: a stray "}" on a known line
    my $good = conf_text(level => 'debug', new_key => 1);
    my @l = split /\n/, $good;
    my ($wl) = grep { $l[$_] =~ /^workers / } 0 .. $#l;
    splice(@l, $wl + 1, 0, '}');
    my $bad_line = $wl + 2;
    $t->write_conf(join("\n", @l) . "\n");
    my $log1 = length $t->error_log;
    hup();
    my $refused = $t->wait_for(sub {
        substr($t->error_log, $log1) =~ /^(.*reload refused.*)$/m && $1 }, 10);
    ok($refused, 'hup: the broken config was refused')
        or diag(substr($t->error_log, $log1));
    like($refused // '', qr/herald\.conf:$bad_line\b/,
        "hup: the error names herald.conf:$bad_line") or diag($refused);
    note("hup: $refused") if $refused;
    ok($t->running, 'hup: herald still running')
        or diag('herald exited: ' . Herald::Test::_status_text($t->exit_status // 0)
            . "\n" . $t->stderr_log(since_start => 1));
    ok(wait_acked($cl, 350), 'hup: sending went on after the refusal '
        . '(350 acked)');
    # the old configuration is still in force: its api_key still works
    is($key_ok->(), 200, 'hup: the old configuration stays after the '
        . 'refusal (the reloaded api_key works)');
    # back to a good config (the test expects it) and reload once more
    $t->write_conf(conf_text());
    my $log3 = length $t->error_log;
    hup();
    ok($t->wait_for(sub {
        substr($t->error_log, $log3) =~ /configuration reloaded/ }, 10),
        'hup: a fixed config is accepted again');
    reap_client($cl, 60);
    ensure_running('hup');
    my @errs = client_errors($cl);
    is(scalar @errs, 0, 'hup: no request failed during the reloads')
        or diag(join("\n", @errs[0 .. ($#errs < 9 ? $#errs : 9)]));
    check_ids('hup', [acked($cl)]);
    no_alerts('hup');
}

# ==== many SIGHUPs during a burst of four clients ========================
# (each reload frees the old configuration while requests that were
# authenticated with it may still be waiting for their shard's commit)

{
    my @cl = map { start_client("hupstorm$_", 300, pause => 0.001,
        retries => 3) } 1 .. 4;
    ok(wait_acked($cl[0], 20), 'hupstorm: clients sending');
    my $n = 0;
    for my $i (1 .. 30) {
        # every reload also rebuilds the APNs provider (connections 1 <->
        # 2) while deliveries are in flight on the old one
        $t->write_conf(conf_text(new_key => $i % 2, conns => 1 + $i % 2));
        hup() or last;
        $n++;
        sleep 0.1;
    }
    reap_client($_, 60) for @cl;
    is($n, 30, 'hupstorm: 30 reloads sent');
    ok($t->running, 'hupstorm: herald survived 30 reloads under load')
        or diag('herald exited: '
            . Herald::Test::_status_text($t->exit_status // 0) . "\n"
            . substr($t->stderr_log(since_start => 1), 0, 3000));
    ensure_running('hupstorm');
    $t->write_conf(conf_text());
    hup();
    check_ids('hupstorm', [map { acked($_) } @cl]);
}

# ==== SIGQUIT mid-burst: drain ============================================

{
    my $cl = start_client('quit', 400, pause => 0.002);
    ok(wait_acked($cl, 100), 'quit: 100 acked');
    my $t0 = time;
    $t->stop(signal => 'QUIT', timeout => 40);
    my $took = time - $t0;
    ok(!$t->{stop_timed_out}, sprintf('quit: herald exited (%.1fs)', $took));
    is($t->exit_status, 0, 'quit: exit status 0');
    reap_client($cl);
    my @ids = acked($cl);
    note('quit: ' . scalar(@ids) . ' acked before the quit');
    like($t->error_log, qr/gracefully shutting down/, 'quit: logged');
    # what the fake accepted before the restart must be recorded delivered:
    # a drain finishes what is in flight
    my $acc_before = $fake->accepted_by_id;
    ok(eval { $t->run(timeout => 30); 1 }, 'quit: restarted') or diag($@);
    ensure_running('quit');
    my $d = check_ids('quit', \@ids);
    # after a drain nothing accepted by the fake should go again
    my $acc_after = $fake->accepted_by_id;
    my @resent = grep { ($acc_before->{$_} // 0) > 0
        && $acc_after->{$_} > $acc_before->{$_} }
        map { Herald::Push::apns_id($_->{id} // '') } values %$d;
    is(scalar @resent, 0, 'quit: nothing the fake had accepted before the '
        . 'drain was sent again after the restart')
        or diag(scalar(@resent) . " re-sent, e.g. $resent[0]");
}

# ==== SIGTERM mid-burst: fast, consistent ==================================

{
    my $cl = start_client('term', 400, pause => 0.002);
    ok(wait_acked($cl, 100), 'term: 100 acked');
    my $t0 = time;
    $t->stop(signal => 'TERM', timeout => 15);
    my $took = time - $t0;
    ok(!$t->{stop_timed_out}, sprintf('term: herald exited (%.1fs)', $took));
    cmp_ok($took, '<', 7, 'term: quickly (under the 5 s stop grace + 2)');
    my $st = $t->exit_status // 0;
    ok(!($st & 127), "term: not killed by a signal (status $st)");
    reap_client($cl);
    my @ids = acked($cl);
    ok(eval { $t->run(timeout => 30); 1 }, 'term: restarted on the store')
        or diag($@);
    check_ids('term', \@ids);
    unlike($t->error_log, qr/mdb_|MDB_|corrupt/i,
        'term: no store errors in the error log')
        or diag(join("\n", grep { /mdb_|corrupt/i } split /\n/, $t->error_log));
}

# ==== the end ==============================================================

ok($t->running, 'herald still running');
$t->stop;
ok(!$t->{stop_timed_out}, 'herald exited on SIGTERM');
no_alerts('end');
diag('duplicates per scenario: '
    . join(', ', map { "$_ $dups_total{$_}" } sort keys %dups_total));
$fake->stop;

done_testing();
