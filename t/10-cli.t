#!/usr/bin/perl

# Command line and configuration: -v, -V, -t on good and bad files (exact
# error text with FILE:LINE, both for -t and for a normal start), include,
# environment variable substitution, and -s reload|stop through the pid file.

use strict;
use warnings;

use Test::More;
use Herald::Test;

my $t = Herald::Test->new;
my $dir = $t->dir;
my $conf = $t->conf_file;

delete $ENV{HERALD_NOPE};

# ==== -v, -V ===============================================================

{
    my ($code, $out) = $t->exec_herald('-v');
    is($code, 0, '-v exits 0');
    like($out, qr{^herald version: herald/\d+\.\d+\.\d+$}m, '-v prints version')
        or diag($out);
    unlike($out, qr/built with/, '-v has no "built with" lines');

    ($code, $out) = $t->exec_herald('-V');
    is($code, 0, '-V exits 0');
    like($out, qr{^herald version: herald/\d+\.\d+\.\d+$}m, '-V prints version');
    for my $lib (qw(libevent nghttp2 OpenSSL LMDB c-ares jansson)) {
        like($out, qr/^built with .*\Q$lib\E/mi, "-V: built with $lib")
            or diag($out);
    }
    like($out, qr/^configure arguments: .*CFLAGS/m, '-V: configure arguments')
        or diag($out);
}

# ==== -t on a good configuration ===========================================

$t->default_conf;
{
    my ($code, $out) = $t->test_conf;
    is($code, 0, '-t good config exits 0') or diag($out);
    like($out, qr/^herald: the configuration file \Q$conf\E syntax is ok$/m,
        '-t: syntax is ok') or diag($out);
    like($out,
        qr/^herald: configuration file \Q$conf\E test is successful$/m,
        '-t: test is successful') or diag($out);
    ok(!$t->running && !-e "$dir/herald.pid", '-t does not start herald');
}

# ==== bad configurations ===================================================

# Each case: [name, config text, expected message, file, line].  The text
# is the default config with a change; lines are counted in the final text
# so the expectations stay right when the default config changes.

my $base = $t->default_conf_text(workers => 2);

sub line_of
{
    my ($text, $re) = @_;
    my @l = split /\n/, $text;
    for my $i (0 .. $#l) {
        return $i + 1 if $l[$i] =~ $re;
    }
    die "no line matching $re";
}

sub with_line_after
{
    my ($text, $after_re, $insert) = @_;
    my @l = split /\n/, $text, -1;
    my $n = line_of($text, $after_re);
    splice(@l, $n, 0, $insert);
    return join("\n", @l);
}

my @cases;

{
    my $c = with_line_after($base, qr/^listen /, 'foo bar;');
    push @cases, ['unknown directive', $c, 'unknown directive "foo"',
        $conf, line_of($c, qr/^foo bar;/)];
}
{
    my $c = $base;
    $c =~ s/^workers 2;$/workers 2 keepalive_requests 100;/m;
    push @cases, ['missing ";" (two directives on one line)', $c,
        'invalid number of arguments in "workers" directive',
        $conf, line_of($c, qr/^workers /)];
}
{
    my $c = $base;
    $c =~ s{^(\s*)path (%%DIR%%/store);$}{$1path $2 \}}m;
    push @cases, ['missing ";" before "}"', $c, 'unexpected "}"',
        $conf, line_of($c, qr/path \S+ \}$/)];
}
{
    # no final newline, so the end of file is on the last line
    my $c = $base . "api_key extra {\n    secret extra-secret;";
    push @cases, ['unbalanced "{"', $c,
        'unexpected end of file, expecting "}"',
        $conf, scalar(split /\n/, $c)];
}
{
    my $c = with_line_after($base, qr/^listen /, '}');
    push @cases, ['unbalanced "}"', $c, 'unexpected "}"',
        $conf, line_of($c, qr/^\}$/)];
}
{
    my $c = $base;
    $c =~ s/^(\s*)path (%%DIR%%\/store);$/$1path $2;\n$1map_size 12q;/m;
    push @cases, ['bad size', $c,
        'invalid value "12q" in "map_size" directive',
        $conf, line_of($c, qr/map_size 12q/)];
}
{
    # the dispatcher's jobs wait for the batch outcome_delay holds
    my $c = $base;
    $c =~ s/^(\s*)path (%%DIR%%\/store);$/$1path $2;\n$1outcome_delay 2s;/m;
    push @cases, ['outcome_delay above 1s', $c,
        '"outcome_delay" must be at most 1s, not "2s"',
        $conf, line_of($c, qr/outcome_delay 2s/)];
    $c =~ s/outcome_delay 2s/outcome_delay soon/;
    push @cases, ['outcome_delay not a time', $c,
        'invalid value "soon" in "outcome_delay" directive',
        $conf, line_of($c, qr/outcome_delay soon/)];
}
{
    my $c = with_line_after($base, qr/^listen /, 'keepalive_timeout 10x;');
    push @cases, ['bad time', $c,
        'invalid value "10x" in "keepalive_timeout" directive',
        $conf, line_of($c, qr/keepalive_timeout 10x/)];
}
{
    my $c = $base;
    $c =~ s/^workers 2;$/workers abc;/m;
    push @cases, ['bad workers value', $c,
        'invalid value "abc" in "workers" directive',
        $conf, line_of($c, qr/^workers abc;/)];
}
{
    my $c = with_line_after($base, qr/^listen /, 'workers 3;');
    push @cases, ['duplicate directive', $c,
        '"workers" directive is duplicate',
        $conf, line_of($c, qr/^workers 3;/)];
}
{
    my $c = $base;
    $c =~ s/^channel sms\s+\{ provider sink; \}$/channel sms { provider nope; }/m;
    push @cases, ['unknown provider', $c,
        'unknown provider "nope" in "channel" directive',
        $conf, line_of($c, qr/provider nope;/)];
}
{
    my $c = $base;
    $c =~ s/secret demo-secret;/secret \$HERALD_NOPE;/;
    push @cases, ['unset environment variable', $c,
        'environment variable "HERALD_NOPE" is not set',
        $conf, line_of($c, qr/HERALD_NOPE/)];
}
{
    my $c = $base;
    $c =~ s/secret ro-secret;/secret env:HERALD_NOPE;/;
    push @cases, ['unset environment variable (env:NAME)', $c,
        'environment variable "HERALD_NOPE" is not set',
        $conf, line_of($c, qr/HERALD_NOPE/)];
}
{
    my $c = with_line_after($base, qr/^listen /, 'include missing.conf;');
    # the wording is not in the spec: it must name the file and the line
    push @cases, ['include of a missing file', $c,
        qr/.*missing\.conf\b.*/, $conf,
        line_of($c, qr/^include missing/)];
}
for my $d ('event_webhook', 'alert_webhook') {
    # the URL is checked by the parser: a reload with a bad one is refused
    # before anything is built
    my $c = with_line_after($base, qr/^listen /, "$d not-a-url;");
    push @cases, ["$d not-a-url", $c,
        qq{"$d" directive expects an http:// or https:// URL},
        $conf, line_of($c, qr/^$d not-a-url;/)];
}
{
    $t->write_file('inc/bad.conf',
        "# included\nkeepalive_requests 100;\nbar baz;\n");
    my $c = with_line_after($base, qr/^listen /, 'include inc/bad.conf;');
    push @cases, ['error inside an included file', $c,
        'unknown directive "bar"', "$dir/inc/bad.conf", 3];
}

for my $case (@cases) {
    my ($name, $text, $msg, $file, $line) = @$case;
    $t->write_conf($text);

    my $re = ref $msg ? $msg : qr/\Q$msg\E/;
    my $tail = qr/ in \Q$file\E:$line$/m;

    my ($code, $out) = $t->test_conf;
    is($code, 1, "-t $name: exit 1");
    like($out, qr/^herald: $re$tail/m, "-t $name: error text")
        or diag("expected: herald: $msg in $file:$line\ngot:\n$out");

    my ($rc, $stderr, $errlog) = $t->run_expect_exit(timeout => 10);
    is($rc, 1, "start $name: exit 1")
        or diag("stderr:\n$stderr");
    like($stderr, qr/$re$tail/m, "start $name: error on stderr")
        or diag("expected: $msg in $file:$line\ngot:\n$stderr");
}

# ==== environment variables ================================================

{
    local $ENV{HERALD_T_SECRET} = 's3cret-from-env';
    local $ENV{HERALD_T_RO} = 'ro-from-env';
    my $c = $base;
    $c =~ s/secret demo-secret;/secret \$HERALD_T_SECRET;/;
    $c =~ s/secret ro-secret;/secret env:HERALD_T_RO;/;
    $t->write_conf($c);

    my ($code, $out) = $t->test_conf;
    is($code, 0, '-t with $HERALD_T_SECRET set') or diag($out);

    $t->run;
    my $r = $t->http(PUT => '/v1/users/env-u1',
        body => { email => 'env@example.com' },
        auth => 'demo:s3cret-from-env');
    like($r->{status}, qr/^20[01]$/, 'secret $HERALD_T_SECRET: auth works')
        or diag(explain $r);
    $r = $t->http(GET => '/v1/users/env-u1', auth => 'demo:demo-secret');
    is($r->{status}, 401, 'the literal secret no longer works');
    # key ro has scope read: a 404 for an unknown notification shows the
    # credentials were accepted
    $r = $t->http(GET => '/v1/notifications/n-nope', auth => 'ro:ro-from-env');
    is($r->{status}, 404, 'secret env:HERALD_T_RO: auth works')
        or diag(explain $r);
    $r = $t->http(GET => '/v1/notifications/n-nope', auth => 'ro:ro-secret');
    is($r->{status}, 401, 'the literal ro secret no longer works');
    $r = $t->http(GET => '/v1/users/env-u1',
        auth => 'demo:$HERALD_T_SECRET');
    is($r->{status}, 401, 'the unexpanded "$HERALD_T_SECRET" does not work');
    $t->stop;
}

# ==== -s reload, -s stop ===================================================

{
    $t->default_conf(workers => 2);
    $t->run;
    my $pid = $t->pid;

    ok($t->wait_for(sub { ($t->read_pid_file // 0) == $pid }, 5),
        'pid file holds the pid of the running herald');

    my ($code, $out) = $t->signal_cmd('reload');
    is($code, 0, '-s reload exits 0') or diag($out);
    sleep 1;
    ok($t->running, 'herald is still running after -s reload')
        or diag($t->error_log);
    is($t->pid, $pid, 'same process after reload');
    my $r = $t->http(GET => '/healthz', auth => undef);
    is($r->{status}, 200, 'healthz after reload') or diag(explain $r);
    $r = $t->http(PUT => '/v1/users/reload-u1', body => { email => 'r@x.io' });
    like($r->{status}, qr/^20[01]$/, 'API answers after reload')
        or diag(explain $r);

    ($code, $out) = $t->signal_cmd('stop');
    is($code, 0, '-s stop exits 0') or diag($out);
    ok($t->wait_exit(10), 'herald exits after -s stop');
    my $st = $t->exit_status;
    SKIP: {
        skip 'daemon mode: herald is not our child', 1 unless defined $st;
        ok(($st & 127) == 0 && ($st >> 8) == 0,
            'herald exit status 0 after -s stop')
            or diag("status: $st");
    }
    ok(!$t->can_connect, 'port closed after -s stop');

    ($code, $out) = $t->signal_cmd('stop');
    isnt($code, 0, '-s stop with nothing running fails')
        or diag($out);
}

$t->stop;
done_testing();
