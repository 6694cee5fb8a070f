package Herald::Push;

# Herald::Push: what the push provider tests (t/4*.t) and bench/push
# share: a throw-away PKI made with the openssl CLI (a test CA, a server
# certificate for 127.0.0.1 and localhost), an APNs .p8 key (EC P-256,
# PKCS#8), a Google service-account JSON (RSA), and the fakes in t/fake/
# started on a free port and read back from their JSON-lines log: APNs and
# FCM are C programs (t/fake/apns.c, fcm.c, built by make into objs/fake/),
# the other peers node scripts.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Digest::SHA ();
use File::Basename qw(dirname);
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

our $JSON = JSON::PP->new->utf8->canonical;

my $ROOT = abs_path(dirname(__FILE__) . '/../../..');

# The apns-id herald sends for a delivery id (src/provider/apns.c). An id
# herald made ("n", shard and seq in hex, "-", index) is laid out as a
# version 8 UUID (RFC 9562): seq's 48 high bits, the version, its next 12
# bits, the variant, its low 4 bits, the shard, the index. Any other id: a
# version 5 UUID (RFC 4122) of it in herald's namespace.
sub apns_id
{
    my ($id) = @_;
    if ($id =~ /^n([0-9a-f]{2})([0-9a-f]{16})-(\d{1,15})$/) {
        my ($shard, $idx) = (hex $1, $3);
        my ($hi, $lo) = (hex substr($2, 0, 8), hex substr($2, 8, 8));
        return _uuid_text(sprintf('%08x%04x', $hi, $lo >> 16)
            . sprintf('%04x', 0x8000 | (($lo >> 4) & 0xfff))
            . sprintf('%04x', 0x8000 | (($lo & 0xf) << 10) | ($shard << 2)
                | int($idx / 2**48))
            . sprintf('%012x', $idx % 2**48));
    }
    my $ns = pack('H*', '9b1f4a626c0d4e1a8e572b3d91c4705e');
    my @b = unpack('C16', substr(Digest::SHA::sha1($ns . $id), 0, 16));
    $b[6] = ($b[6] & 0x0f) | 0x50;
    $b[8] = ($b[8] & 0x3f) | 0x80;
    return _uuid_text(join('', map { sprintf('%02x', $_) } @b));
}

sub _uuid_text
{
    my ($h) = @_;
    return join('-', substr($h, 0, 8), substr($h, 8, 4), substr($h, 12, 4),
        substr($h, 16, 4), substr($h, 20));
}

sub node { $ENV{HERALD_TEST_NODE} // '/usr/bin/node' }
sub JSON { $JSON }

# the fakes written in C (objs/fake/KIND; HERALD_TEST_FAKE_DIR overrides)
my %C_FAKE = (apns => 1, fcm => 1);

sub fake_dir { $ENV{HERALD_TEST_FAKE_DIR} // "$ROOT/objs/fake" }

# The command line that runs fake KIND.
sub fake_cmd
{
    my ($kind) = @_;
    return (node(), "$ROOT/t/fake/$kind.js") unless $C_FAKE{$kind};
    my $bin = fake_dir() . "/$kind";
    croak "fake $kind not built: $bin (run make)" unless -x $bin;
    return ($bin);
}

sub have_tools
{
    return "node not found (" . node() . ")" unless -x node();
    return "openssl not found" if system('openssl version >/dev/null 2>&1');
    return undef;
}

sub _openssl
{
    my (@args) = @_;
    my $cmd = join(' ', 'openssl', @args) . ' >/dev/null 2>&1';
    system($cmd) == 0 or croak "failed: $cmd";
}

# Test CA + server certificate (EC P-256) in DIR; returns
# {ca, cert, key}.
sub make_pki
{
    my ($dir) = @_;
    my %f = (ca => "$dir/ca.pem", ca_key => "$dir/ca.key",
             cert => "$dir/server.pem", key => "$dir/server.key");
    return \%f if -f $f{cert};
    _openssl("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes",
        "-keyout $f{ca_key} -out $f{ca} -days 2 -subj /CN=herald-test-CA",
        "-addext basicConstraints=critical,CA:TRUE",
        "-addext keyUsage=critical,keyCertSign,cRLSign");
    open(my $ext, '>', "$dir/server.ext") or croak $!;
    print $ext "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        . "extendedKeyUsage=serverAuth\n";
    close $ext;
    _openssl("req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes",
        "-keyout $f{key} -out $dir/server.csr -subj /CN=localhost");
    _openssl("x509 -req -in $dir/server.csr -CA $f{ca} -CAkey $f{ca_key}",
        "-CAcreateserial -days 2 -out $f{cert} -extfile $dir/server.ext");
    return \%f;
}

# A client certificate for APNs certificate auth, signed by the test CA.
sub make_client_cert
{
    my ($dir, $pki, $name) = @_;
    my %f = (cert => "$dir/$name.crt", key => "$dir/$name.key");
    _openssl("req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes",
        "-keyout $f{key} -out $dir/$name.csr",
        "-subj '/CN=Apple Push Services: $name/UID=$name'");
    _openssl("x509 -req -in $dir/$name.csr -CA $pki->{ca}",
        "-CAkey $pki->{ca_key} -CAcreateserial -days 2 -out $f{cert}");
    return \%f;
}

# An APNs auth key: NAME.p8 (PKCS#8 EC P-256) and NAME.pub.
sub make_apns_key
{
    my ($dir, $name) = @_;
    my %f = (p8 => "$dir/$name.p8", pub => "$dir/$name.pub");
    _openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256",
        "-out $f{p8}");
    _openssl("pkey -in $f{p8} -pubout -out $f{pub}");
    return \%f;
}

# A service-account JSON for FCM (RSA 2048): returns {json, pub, email}.
sub make_service_account
{
    my ($dir, $name, %opt) = @_;
    my $key = "$dir/$name.key";
    my $pub = "$dir/$name.pub";
    _openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048",
        "-out $key");
    _openssl("pkey -in $key -pubout -out $pub");
    my $pem = do { local (@ARGV, $/) = ($key); <> };
    my $email = "$name\@herald-test.iam.gserviceaccount.com";
    my $sa = {
        type => 'service_account',
        project_id => $opt{project} // 'herald-test',
        private_key_id => "kid-$name",
        private_key => $pem,
        client_email => $email,
        client_id => '1234567890',
        auth_uri => 'https://accounts.google.com/o/oauth2/auth',
        token_uri => $opt{token_uri},
    };
    my $json = "$dir/$name.json";
    open(my $fh, '>', $json) or croak $!;
    print $fh $JSON->encode($sa);
    close $fh;
    return { json => $json, pub => $pub, email => $email };
}

# ==== the fakes =============================================================

# Starts fake KIND (objs/fake/KIND or t/fake/KIND.js) with ARGS; returns a
# Herald::Push::Fake.
sub start_fake
{
    my ($class, $kind, $dir, @args) = @_;
    my $n = ++$Herald::Push::count;
    my $portfile = "$dir/$kind-$n.port";
    my $log = "$dir/$kind-$n.jsonl";
    unlink $portfile;
    my @cmd = fake_cmd($kind);
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>>', "$dir/$kind-$n.out");
        open(STDERR, '>&', \*STDOUT);
        exec(@cmd, '--log', $log, '--port-file', $portfile, @args)
            or POSIX::_exit(127);
    }
    my $deadline = time + 10;
    while (!-s $portfile) {
        if (waitpid($pid, WNOHANG) == $pid || time > $deadline) {
            kill 'KILL', $pid;
            my $out = do { local (@ARGV, $/) = ("$dir/$kind-$n.out"); <> };
            croak "fake $kind did not start: " . ($out // '');
        }
        sleep 0.05;
    }
    my $port = do { local (@ARGV, $/) = ($portfile); <> };
    return bless { pid => $pid, port => $port + 0, log => $log,
                   owner => $$ }, 'Herald::Push::Fake';
}

package Herald::Push::Fake;

use Time::HiRes qw(sleep time);

sub port { $_[0]{port} }
sub pid  { $_[0]{pid} }

# Every JSON line of the log so far.
sub lines
{
    my ($self) = @_;
    open(my $fh, '<', $self->{log}) or return ();
    my @l;
    while (my $line = <$fh>) {
        next unless $line =~ /\n\z/;
        my $d = eval { $Herald::Push::JSON->decode($line) } or next;
        push @l, $d;
    }
    return @l;
}

# Accepted notifications (lines without "event").
sub received { grep { !exists $_->{event} } $_[0]->lines }
sub events { my ($s, $e) = @_; grep { ($_->{event} // '') eq $e } $s->lines }

# Waits until CODE->() is true (TIMEOUT s); returns its last value.
sub wait_for
{
    my ($self, $code, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    while (1) {
        my $r = $code->();
        return $r if $r || time > $deadline;
        sleep 0.05;
    }
}

sub stop
{
    my ($self) = @_;
    return unless $self->{pid} && $self->{owner} == $$;
    kill 'TERM', $self->{pid};
    my $deadline = time + 5;
    while (waitpid($self->{pid}, POSIX::WNOHANG()) == 0) {
        if (time > $deadline) {
            kill 'KILL', $self->{pid};
            waitpid($self->{pid}, 0);
            last;
        }
        sleep 0.02;
    }
    $self->{pid} = undef;
}

sub DESTROY { local ($?, $!, $@); $_[0]->stop }

1;

package Herald::Push;

# ==== fault injection (t/5*.t) ============================================
#
# start_faulty_fake(KIND, DIR, ARGS...): the same fake as start_fake (a C
# fake: apns or fcm), run with --fault-ctl FILE.  It sees every request
# before its own rules, appends one JSON line per request to its log with
# "event":"request" (fconn, stream, token from :path, id = apns-id, the
# mode in force, the action taken, at), then acts on the mode read from the
# control file (re-read every 20 ms):
#   ok             pass the request to the fake (its own scripting applies)
#   500            answer 500 InternalServerError
#   429:S          answer 429 TooManyRequests with retry-after: S
#   blackhole      never answer (the stream stays open)
#   reset          close the connection at once (TCP reset)
# Whatever the mode, device tokens starting "e500" are always answered 500
# and tokens starting "e429" always 429 with retry-after 1 (per-token
# failures that never recover, for dead-letter tests).
# set_mode(MODE) on the returned object changes the mode; restart() stops
# the fake and starts it again on the same port (a provider coming back).

sub start_faulty_fake
{
    my ($class, $kind, $dir, @args) = @_;
    croak "no fault injection in fake $kind" unless $C_FAKE{$kind};
    my $n = ++$Herald::Push::count;
    my $self = bless { kind => $kind, dir => $dir, args => [@args],
        n => $n, log => "$dir/$kind-$n.jsonl", ctl => "$dir/$kind-$n.mode",
        owner => $$ }, 'Herald::Push::Fake';
    $self->set_mode($self->{mode} // 'ok');
    $self->_spawn_faulty;
    return $self;
}

package Herald::Push::Fake;

sub _spawn_faulty
{
    my ($self) = @_;
    my ($kind, $dir, $n) = @$self{qw(kind dir n)};
    my $portfile = "$dir/$kind-$n.port";
    unlink $portfile;
    my @port = defined $self->{port} ? ('--port', $self->{port}) : ();
    my @cmd = Herald::Push::fake_cmd($kind);
    my $pid = fork // Carp::croak("fork: $!");
    if ($pid == 0) {
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>>', "$dir/$kind-$n.out");
        open(STDERR, '>&', \*STDOUT);
        exec(@cmd, '--log', $self->{log}, '--port-file', $portfile, @port,
             '--fault-ctl', $self->{ctl}, @{$self->{args}})
            or POSIX::_exit(127);
    }
    my $deadline = time + 10;
    while (!-s $portfile) {
        if (waitpid($pid, POSIX::WNOHANG()) == $pid || time > $deadline) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            my $out = do { local (@ARGV, $/) = ("$dir/$kind-$n.out"); <> };
            Carp::croak("fake $kind did not start: " . ($out // ''));
        }
        sleep 0.05;
    }
    my $port = do { local (@ARGV, $/) = ($portfile); <> };
    $self->{pid} = $pid;
    $self->{port} = $port + 0;
    return $self;
}

sub set_mode
{
    my ($self, $mode) = @_;
    my $ctl = $self->{ctl} or Carp::croak('not a faulty fake');
    open(my $fh, '>', "$ctl.tmp") or Carp::croak("$ctl.tmp: $!");
    print $fh "$mode\n";
    close $fh;
    rename("$ctl.tmp", $ctl) or Carp::croak("rename $ctl: $!");
    $self->{mode} = $mode;
    sleep 0.05;    # the fake re-reads it every 20 ms
    return $self;
}

# Stops the fake and starts it again on the same port (the old process's
# state, e.g. per-token attempt counts, is gone; the log continues).
sub restart
{
    my ($self) = @_;
    $self->stop;
    $self->{owner} = $$;
    my $deadline = time + 10;
    while (1) {
        my $ok = eval { $self->_spawn_faulty; 1 };
        return $self if $ok;
        Carp::croak($@) if time > $deadline;
        sleep 0.2;    # the port may still be in TIME_WAIT/in use
    }
}

# Every request the fault injector saw ("event":"request" lines).
sub requests { $_[0]->events('request') }

# Accepted (200) notifications grouped by apns-id: { id => count }.
sub accepted_by_id
{
    my ($self) = @_;
    my %n;
    $n{ $_->{headers}{'apns-id'} // '' }++ for $self->received;
    return \%n;
}

# apns-ids the fake accepted more than once: { id => count }.
sub duplicates
{
    my ($self) = @_;
    my $by = $self->accepted_by_id;
    return { map { ($_ => $by->{$_}) } grep { $by->{$_} > 1 } keys %$by };
}

package Herald::Push;

1;
