#!/usr/bin/perl
# The built-in status page: GET /status is one HTML page with inline SVG
# charts (throughput and queue depth per channel) and current totals; it
# renders with zero data, follows what herald did, and loads in headless
# Chromium (Debian's chromium), which saves a screenshot.

use strict;
use warnings;
use Test::More;
use File::Copy qw(copy);
use File::Spec;
use POSIX ();
use lib 't/lib';
use Herald::Test;

Herald::Test->require_binary;

my $t = Herald::Test->new;
$t->default_conf(workers => 2, extra => <<'EOF');
api_key sender {
    secret sender-secret;
    scopes send;
}
EOF
$t->run;

# ---- auth: scope read, as /metrics ----
is($t->http(GET => '/status', auth => undef)->{status}, 401,
    'status needs a key');
is($t->http(GET => '/status', auth => 'sender:sender-secret')->{status},
    403, 'a send-only key may not read it');

# ---- zero data: a fresh herald still gets a whole page ----
my $r = $t->http(GET => '/status', auth => 'ro:ro-secret');
is($r->{status}, 200, 'GET /status with a read key');
like($r->{headers}{'content-type'}, qr{^text/html; charset=utf-8},
    'HTML content type');
like($r->{headers}{'content-security-policy'} // '', qr/default-src 'none'/,
    'no external assets allowed');
page_ok($r->{body}, 'fresh start');
unlike($r->{body}, qr/\b(nan|inf)\b/i, 'no NaN or Inf with zero data');
unlike($r->{body}, qr/<script|\bsrc=|\bhref=/i,
    'no script, no external reference');

is($t->http(HEAD => '/status')->{status}, 200, 'HEAD /status');

# ---- traffic: email and sms to one user (no device: no push, no web) ----
$t->http(PUT => '/v1/users/s1', body => { email => 's1@example.com',
    phone => '+15550003333' });
my $n = 6;
for (1 .. $n) {
    is($t->http(POST => '/v1/notifications',
        body => { user_id => 's1', title => 'hello', body => "status $_" }
    )->{status}, 202, "send $_");
}
ok($t->wait_for(sub { @{ $t->deliveries } == 2 * $n }, 10),
    'email and sms delivered');
# and some for later: they wait in the queues
my $later = $t->rfc3339(time + 3600);
for (1 .. 3) {
    is($t->http(POST => '/v1/notifications',
        body => { user_id => 's1', title => 'later', body => "later $_",
                  send_at => $later })->{status}, 202, "schedule $_");
}

# samples are taken every 5 s: wait for lines above zero
my $body;
ok($t->wait_for(sub {
    $body = $t->http(GET => '/status')->{body};
    above_zero(figure($body, 0), '#59a14f');
}, 25, 1), 'throughput chart shows the email deliveries');
ok($t->wait_for(sub {
    $body = $t->http(GET => '/status')->{body};
    above_zero(figure($body, 1), '#f28e2b');
}, 15, 1), 'queue depth chart shows the scheduled sms');
page_ok($body, 'with traffic');
like($body, qr{<b>@{[$n + 3]}</b><span>accepted</span>},
    'accepted total');
like($body, qr{<b>@{[2 * $n]}</b><span>delivered</span>},
    'delivered total: email + sms');
like($body, qr{<b>6</b><span>queued</span>}, 'queued now: 3 emails + 3 sms');
like($body, qr{sms</td><td>3</td>}, 'sms queue depth in the table');
like($body, qr{<td>sink</td><td>log</td><td>@{[2 * $n]}</td>},
    'provider row: sink delivered them');
like($body, qr{class="ok">closed</td>}, 'breaker closed');
like($body, qr{<td>group commits</td><td>[1-9]}, 'commit stats');
unlike($body, qr/\b(nan|inf)\b/i, 'no NaN or Inf with traffic');

# ---- the Grafana dashboard has a panel for every metric family ----
{
    my @families = $t->http(GET => '/metrics')->{body} =~ /^# TYPE (\S+) /mg;
    ok(@families >= 20, scalar(@families) . ' metric families');
    my $dash = $t->json_decode($t->read_file(
        File::Spec->rel2abs('contrib/grafana/herald.json')) // '');
    ok($dash && $dash->{schemaVersion} >= 36, 'dashboard JSON parses');
    my @vars = map { $_->{type} } @{ $dash->{templating}{list} // [] };
    ok((grep { $_ eq 'datasource' } @vars), 'a data source variable');
    my @targets = map { @{ $_->{targets} // [] } } @{ $dash->{panels} // [] };
    ok(!(grep { ($_->{datasource}{uid} // '') ne '${datasource}' } @targets),
        'every query uses the data source variable');
    my $exprs = join "\n", map { $_->{expr} } @targets;
    for my $f (@families) {
        like($exprs, qr/\b\Q$f\E(?:_bucket|_sum|_count)?\b/,
            "dashboard shows $f");
    }
}

# ---- headless Chromium ----
SKIP: {
    my ($chromium) = grep { -x } map { "$_/chromium" }
        split /:/, $ENV{PATH} // '';
    skip 'chromium is not installed (Debian package "chromium"; '
        . 'make deps installs it)', 9 unless $chromium;

    my $dir = $t->dir;
    # Chromium sends the userinfo of the URL as HTTP Basic credentials
    my $url = 'http://ro:ro-secret@127.0.0.1:' . $t->port . '/status';
    my @flags = ('--headless', '--no-sandbox', '--disable-gpu',
        '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync',
        "--user-data-dir=$dir/chromium", '--window-size=1200,900');

    my ($rc, $dom) = chromium($chromium, "$dir/chromium.log", @flags,
        '--dump-dom', $url);
    is($rc, 0, 'chromium --dump-dom exits 0')
        or diag(tail("$dir/chromium.log"));
    like($dom, qr{<title>herald status</title>}, 'the page loaded');
    my @svg = $dom =~ /<svg/g;
    is(scalar @svg, 3, 'three SVG charts in the DOM');
    like($dom, qr/<polyline/, 'charts have lines');
    like($dom, qr/email/, 'channel names shown');

    my $png = "$dir/status.png";
    ($rc) = chromium($chromium, "$dir/chromium.log", @flags,
        "--screenshot=$png", $url);
    is($rc, 0, 'chromium --screenshot exits 0')
        or diag(tail("$dir/chromium.log"));
    ok(-s $png && -s $png > 10000, 'screenshot written') or diag("$png");
    my ($w, $h) = png_size($png);
    is($w, 1200, 'screenshot width');
    is($h, 900, 'screenshot height');
    if ($ENV{HERALD_TEST_LEAVE} && -s $png) {
        copy($png, 't/tmp/status.png');
        diag('screenshot: t/tmp/status.png');
    }
}

$t->stop;
ok(!$t->running, 'stopped');
done_testing;

# ---- helpers ----

# The parts every rendering has, whatever the data.
sub page_ok
{
    my ($html, $what) = @_;
    like($html, qr{^<!DOCTYPE html>.*</html>\s*$}s, "$what: whole document");
    my @open = $html =~ /<svg/g;
    my @close = $html =~ m{</svg>}g;
    is(scalar @open, 3, "$what: three charts");
    is(scalar @close, 3, "$what: charts closed");
    for my $ch (qw(push sms email web)) {
        like($html, qr{>$ch</}, "$what: channel $ch named");
    }
    like($html, qr{Queue depth}, "$what: queue depth chart");
    like($html, qr{Deliveries per second}, "$what: throughput chart");
    like($html, qr{>now</text>}, "$what: time axis labelled");
}

# The Nth chart of a page.
sub figure
{
    my ($html, $n) = @_;
    my @fig = $html =~ m{<figure class="chart">(.*?)</figure>}sg;
    return $fig[$n] // '';
}

# Whether the series drawn in COLOR has a point above the x axis.
sub above_zero
{
    my ($fig, $color) = @_;
    my ($axis) = $fig =~ m{<line x1="[\d.]+" y1="([\d.]+)" x2="[\d.]+" y2="\1" class="axis"/>};
    return 0 unless defined $axis;
    for my $pts ($fig =~ m{stroke="\Q$color\E"[^>]* points="([^"]*)"}g) {
        return 1 if grep { (split /,/)[1] < $axis } split ' ', $pts;
    }
    return 0;
}

# Runs chromium with ARGS (at most 90 s); returns (exit code, stdout).
# Its stderr (D-Bus chatter and the like) goes to LOG.
sub chromium
{
    my ($bin, $log, @args) = @_;
    pipe(my $rd, my $wr) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $rd;
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>&', $wr) or POSIX::_exit(126);
        open(STDERR, '>>', $log) or POSIX::_exit(126);
        $ENV{HOME} = $t->dir;
        exec('timeout', '-k', '5', '90', $bin, @args) or POSIX::_exit(127);
    }
    close $wr;
    my $out = do { local $/; <$rd> } // '';
    close $rd;
    waitpid($pid, 0);
    return ($? & 127 ? -1 : $? >> 8, $out);
}

sub png_size
{
    my ($path) = @_;
    open(my $fh, '<:raw', $path) or return (0, 0);
    read($fh, my $head, 24) == 24 or return (0, 0);
    return (0, 0) unless substr($head, 0, 8) eq "\x89PNG\r\n\x1a\n";
    return unpack('NN', substr($head, 16, 8));
}

sub tail
{
    my ($path) = @_;
    open(my $fh, '<', $path) or return '';
    my @l = <$fh>;
    return join '', @l[-(@l < 20 ? @l : 20) .. -1];
}
