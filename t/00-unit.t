#!/usr/bin/perl

# Runs every C unit test binary under $HERALD_UNIT_DIR (objs/unit, built from
# t/unit/<layer>/<module>.c) and reports each one as a single test: it must
# exit 0, print a TAP plan, and have as many passing "ok" lines as planned
# with no "not ok" (TODO tests excepted).

use strict;
use warnings;

use File::Find;
use File::Spec;
use IO::Select;
use POSIX ();
use Test::More;
use Time::HiRes qw(time);

my $dir = $ENV{HERALD_UNIT_DIR};
plan(skip_all => 'HERALD_UNIT_DIR is not set') unless defined $dir;
plan(skip_all => "HERALD_UNIT_DIR \"$dir\" is not a directory") unless -d $dir;

my @bins;
find({ no_chdir => 1, wanted => sub {
    push @bins, $File::Find::name if -f $_ && -x _ && !/\.(?:o|d|dSYM)$/;
} }, $dir);
@bins = sort @bins;
plan(skip_all => "no unit test binaries in $dir") unless @bins;

my $timeout = $ENV{HERALD_UNIT_TIMEOUT} // 120;

for my $bin (@bins) {
    my $name = File::Spec->abs2rel($bin, $dir);
    my ($code, $out) = run_capture($bin, $timeout);
    my @problems = check_tap($code, $out);
    ok(!@problems, "unit/$name") or diag(join("\n", @problems));
}

done_testing();

sub run_capture
{
    my ($bin, $limit) = @_;
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $r;
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>&', $w) or POSIX::_exit(126);
        open(STDERR, '>&', $w) or POSIX::_exit(126);
        exec($bin) or POSIX::_exit(127);
    }
    close $w;
    my $out = '';
    my $sel = IO::Select->new($r);
    my $deadline = time + $limit;
    my $timed_out = 0;
    while (1) {
        my $left = $deadline - time;
        if ($left <= 0) { $timed_out = 1; last }
        next unless $sel->can_read($left);
        my $n = sysread($r, my $buf, 65536);
        last unless $n;
        $out .= $buf;
    }
    close $r;
    if ($timed_out) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
        return ("timeout after ${limit}s", $out);
    }
    waitpid($pid, 0);
    my $st = $?;
    return ($st & 127 ? "killed by signal " . ($st & 127) : $st >> 8, $out);
}

sub check_tap
{
    my ($code, $out) = @_;
    my @p;
    my @lines = split /\n/, $out;

    push @p, "exit status: $code" unless $code eq '0';

    my ($plan) = grep { /^1\.\.\d+/ } @lines;
    if (!defined $plan) {
        push @p, 'no TAP plan (1..N) in the output';
    } elsif ($plan =~ /^1\.\.0\b/) {
        return @p;    # skipped as a whole
    }

    my ($pass, $count) = (0, 0);
    for my $l (@lines) {
        next unless $l =~ /^(not )?ok\b/;
        my $failed = defined $1;
        $count++;
        my $todo = $l =~ /#\s*TODO\b/i;
        if ($failed && !$todo) {
            push @p, $l;
        } else {
            $pass++;
        }
    }
    if (defined $plan && $plan =~ /^1\.\.(\d+)/ && $1 != $count) {
        push @p, "planned $1 tests but ran $count";
    }
    if (@p) {
        # give the context of the failures: the output's diagnostics
        my @diag = grep { /^\s*#/ } @lines;
        splice(@diag, 40) if @diag > 40;
        push @p, @diag;
    }
    return @p;
}
