#!/usr/bin/perl

# Provider faults (issue 6, part 6) against t/fake/apns.c run with the
# fault control of Herald::Push::start_faulty_fake, which sees every
# request and can answer 500, 429 + retry-after, black-hole or reset
# whatever the token, switched at run time:
#
#   flap     every request 500 for 2 s, then the provider recovers
#   mixed    tokens "e500..." always 500 in the same burst as good tokens:
#            retried exactly `attempts` times then dead-lettered, the good
#            ones are not slowed
#   storm    every request 429 with retry-after: 2 for 3 s: no request for
#            a delivery before its retry-after, all delivered afterwards
#   goaway   300 notifications, GOAWAY every 25 streams (fake option)
#   drop     300 notifications, connection dropped every 30 (fake option)
#   reset    300 notifications while the fake resets connections for 1 s
#   blackhole the provider never answers: timeouts fire, retries happen,
#            the breaker opens (error log, /v1/queues), deliveries stay
#            queued; the fake is restarted on the same port and they are
#            delivered
#
# The rule in each: every 202 ends delivered, or dead-lettered exactly as
# the provider's retry policy says; duplicates the fake accepted (same
# apns-id twice) are counted and printed, not failed (at-least-once).

use strict;
use warnings;

use Test::More;
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(sleep time);
use lib 't/lib';
use Herald::Test;
use Herald::Push;

my $why = Herald::Push::have_tools();
plan(skip_all => $why) if $why;

my $keeper = Herald::Test->new;    # the temp dir for keys and fakes
my $dir = $keeper->dir;
our $t;    # the herald the helpers talk to
my $pki = Herald::Push::make_pki($dir);
my $key = Herald::Push::make_apns_key($dir, 'k1');
my @common = ('--cert', $pki->{cert}, '--key', $pki->{key},
    '--jwt', "KEY0000001:TEAM000001:$key->{pub}",
    '--initial-streams', 1000, '--max-streams', 1000);

my %fake = (
    flap  => Herald::Push->start_faulty_fake('apns', $dir, @common),
    mixed => Herald::Push->start_faulty_fake('apns', $dir, @common),
    storm => Herald::Push->start_faulty_fake('apns', $dir, @common),
    goaway => Herald::Push->start_faulty_fake('apns', $dir, @common,
        '--goaway-after', 25),
    # answers 20 ms late, so each drop takes requests in flight with it
    drop  => Herald::Push->start_faulty_fake('apns', $dir, @common,
        '--drop-after', 30, '--latency-ms', 20),
    reset => Herald::Push->start_faulty_fake('apns', $dir, @common),
    bh    => Herald::Push->start_faulty_fake('apns', $dir, @common),
    down  => Herald::Push->start_faulty_fake('apns', $dir, @common),
);

# per app: its provider's policy (attempts is checked against outcomes)
my %policy = (
    flap   => { attempts => 12, conf => "retry attempts 12 base 100ms max 1s;\n"
        . "    circuit_breaker failures 5 cooldown 500ms;" },
    mixed  => { attempts => 3, conf => "retry attempts 3 base 100ms max 200ms;\n"
        . "    circuit_breaker failures 1000 cooldown 500ms;" },
    storm  => { attempts => 8, conf => "retry attempts 8 base 100ms max 300ms;\n"
        . "    circuit_breaker failures 5 cooldown 500ms;" },
    goaway => { attempts => 10, conf => "retry attempts 10 base 100ms max 1s;" },
    drop   => { attempts => 10, conf => "retry attempts 10 base 100ms max 1s;" },
    reset  => { attempts => 10, conf => "retry attempts 10 base 100ms max 1s;\n"
        . "    circuit_breaker failures 5 cooldown 300ms;" },
    down   => { attempts => 10, conf => "retry attempts 10 base 100ms max 1s;\n"
        . "    circuit_breaker failures 5 cooldown 300ms;" },
    bh     => { attempts => 40, timeout => '1s',
        conf => "retry attempts 40 base 200ms max 1s;\n"
        . "    circuit_breaker failures 3 cooldown 1s;" },
);

# A herald whose push channel has the providers of APPS (at most 4 per
# channel, so the scenarios use two heralds).
sub start_herald
{
    my (@apps) = @_;
    my $h = Herald::Test->new;
    my $providers = '';
    for my $app (@apps) {
        my $to = $policy{$app}{timeout} // '2s';
        $providers .= <<"EOF";
provider apns_$app {
    type apns;
    url https://127.0.0.1:@{[ $fake{$app}->port ]};
    team_id TEAM000001;
    key_id KEY0000001;
    key_file $key->{p8};
    bundle_id com.example.$app;
    app $app;
    ca_file $pki->{ca};
    connections 1;
    timeout $to;
    $policy{$app}{conf}
}
EOF
    }
    my $conf = $h->default_conf_text(workers => 2);
    $conf =~ s/^channel push .*$/"channel push { provider "
        . join(' ', map { "apns_$_" } @apps) . "; }"/me
        or die "no push channel in the default conf";
    $conf =~ s/^(provider sink \{)/$providers\n$1/m;
    $h->write_conf($conf);
    $h->run;
    return $h;
}

my $tA = start_herald(qw(flap mixed storm bh));
my $tB = start_herald(qw(goaway drop reset down));
$t = $tA;

# ==== helpers =============================================================

# HERALD_TEST_FAULTS=flap,reset runs only those scenarios (debugging)
sub want
{
    my ($name) = @_;
    my $only = $ENV{HERALD_TEST_FAULTS} or return 1;
    return grep { $_ eq $name } split /[\s,]+/, $only;
}

sub tok
{
    my ($prefix, $seed) = @_;
    return $prefix . substr(sha256_hex("apns-$seed"), length $prefix);
}

# N users of APP, each with one iOS device; token prefix by PREFIX->(i).
sub make_users
{
    my ($app, $n, $prefix) = @_;
    my $c = $t->conn;
    my @u;
    for my $i (1 .. $n) {
        my $uid = "$app-u$i";
        my $token = tok($prefix ? $prefix->($i) : 'a', "$app-$i");
        $c->request(PUT => "/v1/users/$uid", body => {});
        my $r = $c->request(POST => "/v1/users/$uid/devices",
            body => { platform => 'ios', token => $token, app => $app });
        die "device for $uid: $r->{status} $r->{body}"
            unless $r->{status} == 201 || $r->{status} == 200;
        push @u, { uid => $uid, token => $token };
    }
    $c->close;
    return @u;
}

# Sends ROUNDS notifications to each user; returns [{nid, uid, token, t}].
sub burst
{
    my ($users, $rounds, $tag) = @_;
    my $c = $t->conn;
    my (@sent, $bad);
    for my $round (1 .. $rounds) {
        for my $u (@$users) {
            my $r = $c->request(POST => '/v1/notifications', body => {
                user_id => $u->{uid}, channels => ['push'],
                title => $tag, body => "$u->{uid} r$round" });
            if ($r->{status} == 202) {
                push @sent, { nid => $r->{json}{id}, uid => $u->{uid},
                    token => $u->{token}, t => time,
                    did => $r->{json}{deliveries}[0]{id} };
            } elsif (!$bad++) {
                diag("$tag: send answered $r->{status}: $r->{body}");
            }
            if ($r->{status} == 0) { $c->close; $c = $t->conn; }
        }
    }
    $c->close;
    return \@sent;
}

sub terminal { my $s = shift // ''; $s eq 'delivered' || $s eq 'failed'
    || $s eq 'expired' }

# Polls until every notification's delivery is terminal (or TIMEOUT);
# fills $s->{d} with the delivery JSON.  Returns the count not terminal.
sub settle
{
    my ($sent, $timeout) = @_;
    my $c = $t->conn;
    my $left;
    $t->wait_for(sub {
        $left = 0;
        for my $s (@$sent) {
            next if $s->{d} && terminal($s->{d}{status});
            my $r = $c->request(GET => "/v1/notifications/$s->{nid}");
            if ($r->{status} == 0) { $c->close; $c = $t->conn; $left++; next }
            $s->{d} = $r->{json}{deliveries}[0] if $r->{status} == 200;
            $s->{d}{status} = "HTTP $r->{status}" if $r->{status} != 200;
            $left++ unless $s->{d} && terminal($s->{d}{status});
        }
        !$left;
    }, $timeout, 0.25);
    $c->close;
    return $left;
}

my %dead;
sub load_dead_letters
{
    %dead = ();
    my $cursor;
    for (1 .. 100) {
        my $q = '/v1/dead-letters?channel=push&limit=1000'
            . (defined $cursor ? "&cursor=$cursor" : '');
        my $r = $t->http(GET => $q);
        last unless $r->{status} == 200;
        $dead{$_->{id}} = $_ for @{$r->{json}{dead_letters} // []};
        $cursor = $r->{json}{next_cursor};
        last unless defined $cursor;
    }
}

# The rule: each delivery delivered, or dead-lettered after exactly the
# policy's attempts; checked against what the fake saw.  Returns counts.
sub check_outcomes
{
    my ($name, $app, $sent, %o) = @_;
    my $f = $fake{$app};
    my $attempts = $policy{$app}{attempts};
    my $acc = $f->accepted_by_id;
    my %req;
    push @{$req{$_->{id} // ''}}, $_ for $f->requests;
    load_dead_letters();
    my (%hist, @bad, @mismatch);
    for my $s (@$sent) {
        my $d = $s->{d} // {};
        my $st = $d->{status} // 'unknown';
        my $aid = Herald::Push::apns_id($d->{id} // $s->{did} // '');
        $s->{aid} = $aid;
        $hist{$st}++;
        my $nreq = scalar @{$req{$aid} // []};
        my $nacc = $acc->{$aid} // 0;
        if ($st eq 'delivered') {
            push @bad, "$s->{nid}: delivered but the fake never accepted it"
                unless $nacc;
        } elsif ($st eq 'failed') {
            push @bad, "$s->{nid}: failed with reason "
                . ($d->{reason} // '?') . ", attempts "
                . ($d->{attempts} // '?') . " (policy $attempts), last error "
                . ($d->{last_error} // '-')
                unless ($d->{reason} // '') eq 'attempts_exhausted'
                    && ($d->{attempts} // 0) == $attempts;
            push @bad, "$s->{nid}: failed but not in /v1/dead-letters"
                unless $dead{$d->{id} // ''};
            push @bad, "$s->{nid}: dead-lettered but the fake accepted it "
                . "($nacc times)" if $nacc;
        } else {
            push @bad, "$s->{nid}: ends $st";
        }
        # the attempt count herald keeps vs the requests the fake saw
        push @mismatch, "$s->{nid} attempts=" . ($d->{attempts} // '?')
            . " fake requests=$nreq"
            if defined $d->{attempts} && $nreq != $d->{attempts};
    }
    my $n = @$sent;
    ok(!@bad, "$name: all $n end delivered or dead-lettered per policy "
        . "(attempts $attempts)")
        or diag(join("\n", "outcomes: " . explain(\%hist),
            @bad[0 .. ($#bad < 14 ? $#bad : 14)]));
    note("$name: outcomes " . join(', ', map { "$_ $hist{$_}" } sort keys %hist));
    if ($o{exact_attempts}) {
        ok(!@mismatch, "$name: the fake saw exactly \"attempts\" requests "
            . "per delivery")
            or diag(scalar(@mismatch) . " differ, e.g.:\n"
                . join("\n", @mismatch[0 .. ($#mismatch < 9 ? $#mismatch : 9)]));
    } elsif (@mismatch) {
        note("$name: " . scalar(@mismatch) . " deliveries whose request count "
            . "at the fake differs from their attempts (replays within an "
            . "attempt, or attempts that never reached it), e.g. $mismatch[0]");
    }
    report_dups($name, $app, $sent);
    return \%hist;
}

my %dups_total;
sub report_dups
{
    my ($name, $app, $sent) = @_;
    my %mine = map { ($_->{aid} => 1) } @$sent;
    my $dups = $fake{$app}->duplicates;
    my @d = grep { $mine{$_} } sort keys %$dups;
    my $extra = 0;
    $extra += $dups->{$_} - 1 for @d;
    $dups_total{$name} = scalar @d;
    if (@d) {
        diag("$name: DUPLICATES at the fake: " . scalar(@d)
            . " apns-ids accepted more than once ($extra extra), e.g. "
            . join(' ', map { "$_ x$dups->{$_}" } @d[0 .. ($#d < 4 ? $#d : 4)]));
    } else {
        diag("$name: duplicates at the fake: 0");
    }
    pass("$name: duplicates counted (allowed, at-least-once)");
}

# ==== 500s for a while, then the provider recovers =========================

if (want('flap')) {
    my @u = make_users('flap', 50);
    $fake{flap}->set_mode('500');
    my $t0 = time;
    my $sent = burst(\@u, 2, 'flap');
    is(scalar @$sent, 100, 'flap: 100 accepted while the provider fails');
    sleep(2 - (time - $t0)) if time - $t0 < 2;
    my @seen500 = grep { $_->{action} eq '500' } $fake{flap}->requests;
    ok(@seen500 > 0, 'flap: herald tried and got 500s (' . scalar(@seen500)
        . ')');
    $fake{flap}->set_mode('ok');
    my $recover = time;
    my $left = settle($sent, 40);
    is($left, 0, 'flap: all settled after recovery');
    my $h = check_outcomes('flap', 'flap', $sent, exact_attempts => 1);
    is($h->{delivered} // 0, 100, 'flap: all 100 delivered (breaker kept '
        . 'them queued while the provider failed)');
    like($t->error_log, qr/circuit breaker of provider "apns_flap" closed -> open/,
        'flap: the breaker opened during the outage');
    note(sprintf('flap: settled %.1fs after recovery', time - $recover));
}

# ==== always-failing tokens in the same burst as good ones =================

if (want('mixed')) {
    my @u = make_users('mixed', 40, sub { $_[0] % 4 == 0 ? 'e500' : 'b' });
    my $sent = burst(\@u, 2, 'mixed');
    is(scalar @$sent, 80, 'mixed: 80 accepted');
    is(settle($sent, 30), 0, 'mixed: all settled');
    check_outcomes('mixed', 'mixed', $sent, exact_attempts => 1);
    my @badtok = grep { $_->{token} =~ /^e500/ } @$sent;
    my @good = grep { $_->{token} !~ /^e500/ } @$sent;
    is(scalar(grep { ($_->{d}{status} // '') eq 'failed'
        && ($_->{d}{reason} // '') eq 'attempts_exhausted' } @badtok),
        scalar @badtok, 'mixed: every always-500 delivery dead-lettered');
    like($badtok[0]{d}{last_error} // '', qr/APNs 500 InternalServerError/,
        'mixed: with its last error');
    my @tl = map { $_->{event} } @{$badtok[0]{d}{timeline} // []};
    is(scalar(grep { $_ eq 'retrying' } @tl), $policy{mixed}{attempts} - 1,
        'mixed: attempts-1 retries on the timeline') or diag(explain \@tl);
    # good tokens: delivered on the first attempt, within a second
    my %acc_at;
    $acc_at{$_->{headers}{'apns-id'}} //= $_->{at} for $fake{mixed}->received;
    my @slow = grep { ($_->{d}{attempts} // 0) != 1
        || !$acc_at{$_->{aid}} || $acc_at{$_->{aid}} / 1000 - $_->{t} > 1 } @good;
    ok(!@slow, 'mixed: the ' . scalar(@good) . ' good deliveries were not '
        . 'slowed (1 attempt, < 1 s)')
        or diag(scalar(@slow) . ' slow, e.g. ' . explain($slow[0]{d}));
}

# ==== a 429 storm: retry-after honoured ====================================

if (want('storm')) {
    my @u = make_users('storm', 50);
    $fake{storm}->set_mode('429:2');
    my $t0 = time;
    my $sent = burst(\@u, 2, 'storm');
    is(scalar @$sent, 100, 'storm: 100 accepted during a 429 storm');
    sleep(3 - (time - $t0)) if time - $t0 < 3;
    $fake{storm}->set_mode('ok');
    is(settle($sent, 40), 0, 'storm: all settled');
    my $h = check_outcomes('storm', 'storm', $sent, exact_attempts => 1);
    is($h->{delivered} // 0, 100, 'storm: all 100 delivered after the storm');
    # no request for a delivery before the retry-after of its last 429
    my %by;
    push @{$by{$_->{id} // ''}}, $_ for $fake{storm}->requests;
    my @early;
    for my $id (keys %by) {
        my @r = sort { $a->{at} <=> $b->{at} } @{$by{$id}};
        for my $i (1 .. $#r) {
            next unless $r[$i - 1]{action} eq '429';
            my $gap = $r[$i]{at} - $r[$i - 1]{at};
            push @early, "$id: ${gap} ms after a 429 with retry-after "
                . "$r[$i-1]{retry_after}"
                if $gap < $r[$i - 1]{retry_after} * 1000;
        }
    }
    my $n429 = grep { $_->{action} eq '429' } $fake{storm}->requests;
    ok($n429 >= 5, "storm: herald got 429s ($n429; the breaker held the "
        . "rest back)");
    ok(!@early, 'storm: no request before its retry-after')
        or diag(scalar(@early) . " early:\n"
            . join("\n", @early[0 .. ($#early < 9 ? $#early : 9)]));
}

# ==== GOAWAY / dropped connections / resets mid-burst (300 each) ===========

$t = $tB;
for my $case (['goaway', 'GOAWAY every 25 streams', 'goaway'],
              ['drop', 'connection dropped every 30', 'drop'],
              ['reset', 'connections reset for 1 s', undef]) {
    my ($app, $name, $event) = @$case;
    next unless want($app);
    my @u = make_users($app, 50);
    my $sent;
    if ($app eq 'reset') {
        $sent = burst([@u[0 .. 24]], 4, $app);
        $fake{reset}->set_mode('reset');
        push @$sent, @{burst([@u[25 .. 49]], 4, $app)};
        sleep 1;
        $fake{reset}->set_mode('ok');
        push @$sent, @{burst(\@u, 2, $app)};
    } else {
        $sent = burst(\@u, 6, $app);
    }
    is(scalar @$sent, 300, "$name: 300 accepted");
    is(settle($sent, 60), 0, "$name: all settled");
    my $h = check_outcomes($name, $app, $sent);
    is($h->{delivered} // 0, 300, "$name: all 300 delivered");
    if ($app eq 'drop') {
        # the default breaker (10 failures, 30 s) must not see a lost
        # connection's requests as that many failures
        my $lost = 0;
        $lost += ($_->{d}{attempts} // 1) - 1 for @$sent;
        # (~100-150 here; ~15 under valgrind, whose herald sends slower)
        cmp_ok($lost, '>=', 10,
            "$name: the drops took requests with them ($lost tried again)");
        unlike($t->error_log,
            qr/circuit breaker of provider "apns_drop" closed -> open/,
            "$name: a lost connection is one failure: the breaker stayed "
            . 'closed');
    }
    if ($event) {
        my $nev = $fake{$app}->events($event);
        cmp_ok($nev, '>=', 5, "$name: it happened ($nev times)");
    } else {
        my $nres = grep { $_->{action} eq 'reset' } $fake{reset}->requests;
        cmp_ok($nres, '>', 0, "$name: connections were reset ($nres)");
    }
}

# ==== the provider process is gone (connection refused) for 3 s ==========

if (want('down')) {
    my @u = make_users('down', 50);
    $fake{down}->stop;
    my $t0 = time;
    my $sent = burst(\@u, 2, 'down');
    is(scalar @$sent, 100, 'down: 100 accepted while the provider is gone');
    sleep(3 - (time - $t0)) if time - $t0 < 3;
    $fake{down}->restart;
    is(settle($sent, 40), 0, 'down: all settled after the provider came back');
    my $h = check_outcomes('down', 'down', $sent);
    is($h->{delivered} // 0, 100, 'down: all 100 delivered');
}

$t = $tA;

# ==== black hole: timeouts, breaker open, deliveries stay queued ==========

if (want('blackhole')) {
    my @u = make_users('bh', 30);
    $fake{bh}->set_mode('blackhole');
    my $sent = burst(\@u, 2, 'bh');
    is(scalar @$sent, 60, 'blackhole: 60 accepted');
    ok($t->wait_for(sub {
        $t->error_log =~ /circuit breaker of provider "apns_bh" closed -> open/
    }, 15), 'blackhole: the breaker opened, logged at error level')
        or diag($t->error_log);
    my ($line) = $t->error_log =~ /^(.*circuit breaker of provider "apns_bh" closed -> open.*)$/m;
    like($line // '', qr/\[error\]/, 'blackhole: at error level')
        or diag($line);
    # each worker has its own breaker and /v1/queues shows the answering
    # worker's: ask a few times
    my (%seen_state, $q);
    for (1 .. 10) {
        $q = $t->http(GET => '/v1/queues');
        $seen_state{$q->{json}{providers}{apns_bh}{circuit_breaker} // 'none'}++;
        sleep 0.05;
    }
    ok($seen_state{open} || $seen_state{'half-open'},
        'blackhole: /v1/queues shows the breaker open')
        or diag(explain \%seen_state);
    note('blackhole: /v1/queues breaker states seen: '
        . join(', ', map { "$_ x$seen_state{$_}" } sort keys %seen_state));
    my $ch = $q->{json}{channels}{push} // {};
    my $queued = ($ch->{ready} // 0) + ($ch->{in_flight} // 0)
        + ($ch->{scheduled} // 0);
    cmp_ok($queued, '>=', 60, "blackhole: /v1/queues counts the 60 waiting "
        . "(ready+in_flight+scheduled = $queued)") or diag(explain $ch);
    # a timeout fired and was recorded as a retry
    my $tm;
    $t->wait_for(sub {
        my $c = $t->conn;
        for my $s (@$sent) {
            my $r = $c->request(GET => "/v1/notifications/$s->{nid}");
            my $d = $r->{json} && $r->{json}{deliveries}[0];
            $s->{d} = $d;
            $tm = $d, last if $d && ($d->{last_error} // '') =~ /timed out/;
        }
        $c->close;
        $tm;
    }, 10, 0.5);
    ok($tm, 'blackhole: a request timed out into a retry')
        or diag(explain($sent->[0]{d}));
    my @term = grep { terminal($_->{d}{status}) } @$sent;
    is(scalar @term, 0, 'blackhole: nothing delivered or dead-lettered while '
        . 'the provider is silent') or diag(explain($term[0]{d}));
    sleep 2;    # a cool-down and probe or two more
    my $before = scalar(grep { $_->{action} eq 'blackhole' } $fake{bh}->requests);
    note("blackhole: $before requests swallowed");
    cmp_ok($before, '<', 60 * 3, 'blackhole: the open breaker held traffic '
        . 'back (fewer than 3 requests per delivery)');

    # the provider comes back: restart the fake on the same port
    $fake{bh}->set_mode('ok');
    $fake{bh}->restart;
    my $t1 = time;
    is(settle($sent, 40), 0, 'blackhole: all settled after the provider '
        . 'came back');
    my $h = check_outcomes('blackhole', 'bh', $sent);
    is($h->{delivered} // 0, 60, 'blackhole: all 60 delivered');
    note(sprintf('blackhole: settled %.1fs after the restart', time - $t1));
    ok($t->wait_for(sub {
        $t->error_log =~ /circuit breaker of provider "apns_bh" half-open -> closed/
    }, 5), 'blackhole: the breaker closed again');
}

# ==== the end ==============================================================

for my $h ([A => $tA], [B => $tB]) {
    my ($n, $x) = @$h;
    ok($x->running, "herald $n still running (no crash)");
    $x->stop;
    ok(!$x->{stop_timed_out}, "herald $n exited on SIGTERM");
    my $st = $x->exit_status // 0;
    ok(!($st & 127), "herald $n did not die of a signal") or diag("status $st");
    unlike($x->error_log, qr/\[(?:alert|emerg|crit)\]/,
        "herald $n: no alert/crit/emerg in the error log")
        or diag(join("\n", grep { /\[(?:alert|emerg|crit)\]/ }
            split /\n/, $x->error_log));
}
diag('duplicates per scenario: '
    . join(', ', map { "$_ $dups_total{$_}" } sort keys %dups_total));
$_->stop for values %fake;

done_testing();
