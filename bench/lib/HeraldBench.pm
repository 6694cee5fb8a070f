package HeraldBench;

# HeraldBench: what bench/email and bench/sms share: machine facts and the
# load wait, herald's CPU from /proc, posting N requests over a few
# pipelining keep-alive connections in parallel (forked posters), reading
# herald_deliveries_total from /metrics, a node peer started on a free port,
# commands run with a time bound, and the overall time bound and clean-up
# on signals. Built on t/lib (Herald::Test, Herald::Push).

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use Herald::Test;
use Herald::Push;

# children to kill if the bench dies (posters, the reference run)
our %KIDS;
my $OWNER = $$;

our $ROOT = abs_path(dirname(__FILE__) . '/../..');
my $HZ = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;

sub hz { $HZ }

# utime + stime of PID (all threads), in seconds
sub cpu_secs
{
    my ($pid) = @_;
    my ($user, $sys) = cpu_user_sys($pid);
    return $user + $sys;
}

# The process's CPU seconds in user space and in the kernel.
sub cpu_user_sys
{
    my ($pid) = @_;
    open(my $fh, '<', "/proc/$pid/stat") or return (0, 0);
    my @f = split / /, (split /\) /, <$fh>)[1];
    return ($f[11] / $HZ, $f[12] / $HZ);
}

# What the process's kernel time is made of: its read and write calls and
# the bytes the writes carried, files and sockets (/proc/PID/io), and its
# context switches, voluntary and involuntary, summed over its threads.
sub kernel_counts
{
    my ($pid) = @_;
    my %c = (syscr => 0, syscw => 0, wchar => 0, read_bytes => 0, vcsw => 0,
        ivcsw => 0, majflt => 0);
    my $io = slurp("/proc/$pid/io");
    $c{$1} = $2 while $io =~ /^(syscr|syscw|wchar|read_bytes): (\d+)/mg;
    # page faults that waited for the disk (the store's map read cold)
    my $stat = slurp("/proc/$pid/stat");
    $c{majflt} = (split ' ', $1)[9] // 0 if $stat =~ /\)\s+(.*)/s;
    for my $st (glob("/proc/$pid/task/*/status")) {
        my $t = slurp($st);
        $c{vcsw} += $1 if $t =~ /^voluntary_ctxt_switches:\s+(\d+)/m;
        $c{ivcsw} += $1 if $t =~ /^nonvoluntary_ctxt_switches:\s+(\d+)/m;
    }
    return \%c;
}

sub slurp { my $f = shift; open(my $fh, '<', $f) or return ''; local $/; <$fh> }

sub load1 { (split ' ', slurp('/proc/loadavg'))[0] // 0 }

# Waits (a minute at a time, TRIES times at most) while the 1-minute load
# is above MAX; returns a note on what it saw.
sub wait_for_quiet
{
    my ($max, $tries) = @_;
    my $l = load1();
    my $waited = 0;
    while ($l > $max && $waited < $tries) {
        printf STDERR "load average %.2f > %.1f: waiting a minute (%d of %d)\n",
            $l, $max, $waited + 1, $tries;
        sleep 60;
        $waited++;
        $l = load1();
    }
    return sprintf('load average %.2f at the start%s', $l,
        $waited ? " (after waiting $waited min" . ($l > $max ? '; still busy, ran anyway)' : ')') : '');
}

sub machine
{
    my $cpus = () = slurp('/proc/cpuinfo') =~ /^processor/mg;
    my ($model) = slurp('/proc/cpuinfo') =~ /^model name\s*:\s*(.*)$/m;
    my ($mem) = slurp('/proc/meminfo') =~ /^MemTotal:\s*(\d+)/m;
    my ($os) = slurp('/etc/os-release') =~ /^PRETTY_NAME="?([^"\n]*)/m;
    chomp(my $kernel = `uname -r`);
    return sprintf('%d CPUs (%s), %.1f GiB, Linux %s, %s', $cpus,
        $model // '?', ($mem // 0) / 1048576, $kernel, $os // '?');
}

# Busy share of all CPUs over one second (from /proc/stat).
sub cpu_busy
{
    my $s = sub { my @f = (split ' ', (slurp('/proc/stat') =~ /^(cpu .*)$/m)[0])[1 .. 8];
        my $t = 0; $t += $_ for @f; ($t, $f[3] + $f[4]) };
    my ($t0, $i0) = $s->();
    sleep 1;
    my ($t1, $i1) = $s->();
    return $t1 > $t0 ? int(100 * (1 - ($i1 - $i0) / ($t1 - $t0)) + 0.5) : 0;
}

# Sends REQS (request bytes, see request_bytes()) to herald over CONNS
# connections in parallel (forked), pipelined PIPE at a time on each
# keep-alive connection. Returns (number not 2xx, time the last answer
# arrived).
sub post_all
{
    my ($t, $reqs, $conns, $pipe) = @_;
    my @slices = map { [] } 1 .. $conns;
    push @{ $slices[$_ % $conns] }, $reqs->[$_] for 0 .. $#$reqs;
    my %kids;
    for my $k (0 .. $conns - 1) {
        my $rfile = "${\ $t->dir}/poster-$k.result";
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my $bad = 0;
            my ($c, $used);
            my @r = @{ $slices[$k] };
            while (my @b = splice(@r, 0, $pipe)) {
                # a fresh connection every 2000 requests (under herald's
                # keepalive_requests) or after one went wrong
                if (!$c || !$c->{sock} || $used >= 2000) {
                    $c->close if $c;
                    $c = $t->conn(timeout => 60);
                    $used = 0;
                }
                $used += @b;
                $c->write(join('', @b))
                    or do { $bad += @b; next };
                my @res = eval { $c->read_responses(scalar @b, timeout => 60,
                    raw => 1) };
                my $ok = grep { $_->{status} >= 200 && $_->{status} < 300 } @res;
                $bad += @b - $ok;
                $used = 1e9 if @res < @b;
            }
            open(my $fh, '>', $rfile);
            printf $fh "%d %.6f\n", $bad, time;
            close $fh;
            POSIX::_exit(0);
        }
        $kids{$pid} = $rfile;
        $KIDS{$pid} = 1;
    }
    my ($bad, $last) = (0, 0);
    my $deadline = time + 600;
    for my $pid (keys %kids) {
        while (waitpid($pid, WNOHANG) == 0) {
            if (time > $deadline) { kill 'KILL', $pid; waitpid($pid, 0); last }
            sleep 0.05;
        }
        delete $KIDS{$pid};
        my ($b, $at) = split ' ', slurp($kids{$pid});
        $bad += $b // scalar(@$reqs);
        $last = $at if ($at // 0) > $last;
    }
    return ($bad, $last);
}

# herald_deliveries_total by outcome for CHANNEL: {delivered => n, ...}
sub deliveries
{
    my ($t, $channel) = @_;
    my $r = $t->http(GET => '/metrics', timeout => 10);
    my %o;
    for (split /\n/, $r->{body} // '') {
        $o{$1} += $2 if /^herald_deliveries_total\{[^}]*channel="\Q$channel\E",outcome="(\w+)"\} (\d+)/;
    }
    $o{$_} //= 0 for qw(delivered retry failed dead_address);
    return \%o;
}

# Starts a node script (SCRIPT, ARGS...) that writes its port to
# --port-file; returns a Herald::Push::Fake (stop() on destruction).
sub start_node
{
    my ($script, $dir, $name, @args) = @_;
    my $portfile = "$dir/$name.port";
    my $log = "$dir/$name.log";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>>', "$dir/$name.out");
        open(STDERR, '>&', \*STDOUT);
        exec(Herald::Push::node(), $script, '--port-file', $portfile,
            '--log', $log, @args) or POSIX::_exit(127);
    }
    my $deadline = time + 10;
    while (!-s $portfile) {
        if (waitpid($pid, WNOHANG) == $pid || time > $deadline) {
            kill 'KILL', $pid;
            die "$name did not start: " . slurp("$dir/$name.out");
        }
        sleep 0.05;
    }
    return bless { pid => $pid, port => slurp($portfile) + 0, log => $log,
        owner => $$ }, 'Herald::Push::Fake';
}

# Runs CMD with a time bound (killed after TIMEOUT s, or when the bench
# dies); returns (exit code or -1, output).
sub run_bounded
{
    my ($timeout, @cmd) = @_;
    my $out = "/tmp/herald-bench-$$-" . int(rand(1e9)) . '.out';
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>', $out) or POSIX::_exit(126);
        open(STDERR, '>&', \*STDOUT);
        exec(@cmd) or POSIX::_exit(127);
    }
    $KIDS{$pid} = 1;
    my $deadline = time + $timeout;
    my $st;
    while (1) {
        if (waitpid($pid, WNOHANG) == $pid) { $st = $?; last }
        if (time > $deadline) { kill 'KILL', $pid; waitpid($pid, 0); last }
        sleep 0.05;
    }
    delete $KIDS{$pid};
    my $text = slurp($out);
    unlink $out;
    return (-1, $text . "\n[timed out after ${timeout}s]\n") unless defined $st;
    return (($st & 127) ? -1 : $st >> 8, $text);
}

END {
    if ($$ == $OWNER) {
        for my $pid (keys %KIDS) { kill 'KILL', $pid; waitpid($pid, 0) }
    }
}

# The whole run is bounded by LIMIT seconds; SIGINT/SIGTERM/SIGALRM die,
# so the destructors (herald, peers) stop what was started.
sub bound
{
    my ($limit) = @_;
    $SIG{$_} = sub { die "bench: interrupted by SIG$_[0]\n" } for qw(INT TERM HUP);
    $SIG{ALRM} = sub { die "bench: over the time limit of ${limit}s\n" };
    alarm $limit;
}

1;
