package Herald::Test;

# Herald::Test: start a private herald for one test script and talk to it.
# Modeled on nginx-tests' Test::Nginx: new() makes a temp dir and picks a
# port, write_conf()/default_conf() write herald.conf, run() starts the
# binary in the foreground, stop() ends it.  The HTTP clients here are
# deliberately small and strict so that tests see exactly what was sent.
#
# Environment: HERALD_TEST_BINARY (the herald to test), HERALD_TEST_LEAVE
# (keep the temp dir), HERALD_TEST_CATLOG (print the error log at stop),
# HERALD_TEST_USE_DAEMON (run with "daemon on;").

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path getcwd);
use Errno qw(EINTR EAGAIN);
use Fcntl qw(:flock O_WRONLY O_APPEND O_CREAT);
use File::Path qw(make_path);
use File::Spec;
use File::Temp ();
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Test::More ();
use Time::HiRes qw(sleep time);

our $VERSION = '0.1';

our $JSON = JSON::PP->new->utf8->canonical;

my %LIVE;    # refaddr => weakened object, so END can stop leftovers

# ==== construction =========================================================

sub binary
{
    my $bin = $ENV{HERALD_TEST_BINARY};
    if (!defined $bin || $bin eq '') {
        my $guess = File::Spec->catfile(getcwd(), 'objs', 'herald');
        $bin = $guess if -x $guess;
    }
    return $bin;
}

# Plans skip_all unless an executable herald is available.
sub require_binary
{
    my $bin = binary();
    if (!defined $bin || $bin eq '') {
        Test::More::plan(skip_all =>
            'HERALD_TEST_BINARY is not set (and no objs/herald)');
    }
    if (!-f $bin || !-x $bin) {
        Test::More::plan(skip_all =>
            "HERALD_TEST_BINARY \"$bin\" is not an executable file");
    }
    return abs_path($bin);
}

sub new
{
    my ($class, %opt) = @_;

    my $bin = $opt{binary} // require_binary();

    my $base = $opt{tmp_base};
    if (!defined $base) {
        my $t_tmp = File::Spec->catdir(getcwd(), 't', 'tmp');
        if (-d File::Spec->catdir(getcwd(), 't')) {
            make_path($t_tmp);
            $base = $t_tmp if -d $t_tmp && -w $t_tmp;
        }
        $base //= File::Spec->tmpdir;
    }

    my $tmp = File::Temp->newdir('herald-test-XXXXXX', DIR => $base,
        CLEANUP => $ENV{HERALD_TEST_LEAVE} ? 0 : 1);

    my $self = bless {
        binary    => $bin,
        tmp       => $tmp,
        dir       => abs_path($tmp->dirname),
        owner_pid => $$,
        pid       => undef,
        daemon    => $ENV{HERALD_TEST_USE_DAEMON} ? 1 : 0,
    }, $class;

    @$self{qw(port port_lock)} = _pick_port();

    Test::More::diag("herald test dir: $self->{dir}")
        if $ENV{HERALD_TEST_LEAVE};

    $LIVE{"$self"} = $self;
    weaken($LIVE{"$self"});

    return $self;
}

# A random port below the ephemeral range (so outgoing client connections
# cannot be holding it), locked with a file so that parallel test scripts
# never pick the same one (herald listens with SO_REUSEPORT, so a second
# herald on the same port would *not* fail to bind).
sub _pick_port
{
    my $lockdir = File::Spec->tmpdir;
    for (1 .. 1000) {
        my $port = 20000 + int(rand(12000));
        my $lockfile = "$lockdir/herald-test-port-$port.lock";
        open(my $lock, '>>', $lockfile) or next;
        if (!flock($lock, LOCK_EX | LOCK_NB)) {
            close $lock;
            next;
        }
        my $probe = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1',
            LocalPort => $port,
            Proto     => 'tcp',
            Listen    => 1,
        );
        if (!$probe) {
            close $lock;
            next;
        }
        close $probe;
        return ($port, $lock);
    }
    croak "cannot find a free TCP port on 127.0.0.1";
}

sub port   { $_[0]{port} }
sub dir    { $_[0]{dir} }
sub pid    { $_[0]{pid} }
sub conf_file { "$_[0]{dir}/herald.conf" }

# Skips the rest of the script unless `herald -V` mentions every feature.
sub has
{
    my ($self, @features) = @_;
    my (undef, $out) = $self->exec_herald('-V');
    for my $f (@features) {
        next if $out =~ /\Q$f\E/i;
        Test::More::plan(skip_all => "herald built without $f");
    }
    return $self;
}

# ==== configuration ========================================================

sub _expand
{
    my ($self, $text) = @_;
    $text =~ s/%%PORT%%/$self->{port}/g;
    $text =~ s/%%DIR%%/$self->{dir}/g;
    return $text;
}

# Writes FILE (default herald.conf) in the test dir, expanding %%PORT%% and
# %%DIR%%.  Returns the absolute path.
sub write_file
{
    my ($self, $name, $text) = @_;
    my $path = File::Spec->file_name_is_absolute($name)
        ? $name : "$self->{dir}/$name";
    my (undef, $d) = File::Spec->splitpath($path);
    make_path($d) if length $d && !-d $d;
    open(my $fh, '>', $path) or croak "cannot write $path: $!";
    print $fh $self->_expand($text);
    close $fh or croak "cannot write $path: $!";
    return $path;
}

sub write_conf
{
    my ($self, $text) = @_;
    my $path = $self->write_file('herald.conf', $text);
    $self->{daemon_conf} = ($self->_expand($text) =~ /^\s*daemon\s+on\s*;/m);
    return $path;
}

sub default_conf_text
{
    my ($self, %opt) = @_;
    my $workers     = $opt{workers} // 2;
    my $extra       = $opt{extra} // '';
    my $store_extra = $opt{store_extra} // '';
    my $daemon      = $self->{daemon} ? 'on' : 'off';
    # channels => { sms => 'flaky sink' }: provider lists per channel
    my %ch = (push => 'sink', sms => 'sink', email => 'sink', web => 'sink',
        %{ $opt{channels} // {} });

    return <<"EOF";
# written by Herald::Test::default_conf
daemon $daemon;
pid %%DIR%%/herald.pid;
error_log %%DIR%%/error.log info;
access_log %%DIR%%/access.log;

workers $workers;
listen 127.0.0.1:%%PORT%%;

$extra

store {
    path %%DIR%%/store;
    $store_extra
}

api_key demo {
    secret demo-secret;
    scopes send users read admin;
}

api_key ro {
    secret ro-secret;
    scopes read;
}

provider sink {
    type log;
    path %%DIR%%/deliveries.log;
}

channel push  { provider $ch{push}; }
channel sms   { provider $ch{sms}; }
channel email { provider $ch{email}; }
channel web   { provider $ch{web}; }
EOF
}

sub default_conf
{
    my ($self, %opt) = @_;
    return $self->write_conf($self->default_conf_text(%opt));
}

# ==== process control ======================================================

# Runs CMD (array ref) with stdout+stderr captured, at most TIMEOUT seconds.
# Returns (exit code or -1 on timeout/signal, output).
sub _run_capture
{
    my ($cmd, %opt) = @_;
    my $timeout = $opt{timeout} // 20;

    pipe(my $r, my $w) or croak "pipe: $!";
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close $r;
        chdir $opt{chdir} if defined $opt{chdir};
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>&', $w) or POSIX::_exit(126);
        open(STDERR, '>&', $w) or POSIX::_exit(126);
        %ENV = (%ENV, %{$opt{env}}) if $opt{env};
        exec(@$cmd) or POSIX::_exit(127);
    }
    close $w;

    my $out = '';
    my $sel = IO::Select->new($r);
    my $deadline = time + $timeout;
    my $timed_out = 0;
    while (1) {
        my $left = $deadline - time;
        if ($left <= 0) {
            $timed_out = 1;
            last;
        }
        next unless $sel->can_read($left);
        my $n = sysread($r, my $chunk, 65536);
        next if !defined $n && $! == EINTR;
        last if !$n;
        $out .= $chunk;
    }
    close $r;
    if ($timed_out) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
        return (-1, $out . "\n[Herald::Test: timed out after ${timeout}s]\n");
    }
    waitpid($pid, 0);
    my $st = $?;
    return (($st & 127) ? -1 : $st >> 8, $out);
}

# Runs the herald binary with ARGS, returns (exit code, combined output).
sub exec_herald
{
    my ($self, @args) = @_;
    my %opt;
    %opt = %{shift @args} if @args && ref $args[0] eq 'HASH';
    return _run_capture([$self->{binary}, @args],
        chdir => $self->{dir}, %opt);
}

sub test_conf
{
    my ($self, %opt) = @_;
    return $self->exec_herald(\%opt, '-t', '-c', $self->conf_file);
}

sub signal_cmd
{
    my ($self, $sig, %opt) = @_;
    return $self->exec_herald(\%opt, '-s', $sig, '-c', $self->conf_file);
}

sub _spawn
{
    my ($self, %opt) = @_;
    my $conf = $self->conf_file;
    croak "no $conf: call write_conf or default_conf first" unless -f $conf;

    my $errfile = "$self->{dir}/stderr.log";
    $self->{stderr_offset} = -s $errfile // 0;

    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        chdir $self->{dir};
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>>', $errfile) or POSIX::_exit(126);
        open(STDERR, '>&', \*STDOUT) or POSIX::_exit(126);
        %ENV = (%ENV, %{$opt{env}}) if $opt{env};
        exec($self->{binary}, '-c', $conf) or POSIX::_exit(127);
    }
    return $pid;
}

# Starts herald and waits until the port accepts connections.  Dies (with
# stderr and the error log) if herald exits or does not listen in time.
sub run
{
    my ($self, %opt) = @_;
    croak "herald is already running (pid $self->{pid})" if $self->running;
    my $timeout = $opt{timeout} // 10;

    my $pid = $self->_spawn(%opt);
    my $daemon = $self->{daemon_conf};
    $self->{pid} = $daemon ? undef : $pid;
    $self->{child} = $pid;
    delete $self->{exit_status};

    my $deadline = time + $timeout;
    my $launcher_done = 0;
    while (time < $deadline) {
        if (!$launcher_done && waitpid($pid, WNOHANG) == $pid) {
            my $st = $?;
            if (!$daemon || $st != 0) {
                $self->{pid} = undef;
                $self->{exit_status} = $st;
                croak "herald exited during start-up ("
                    . _status_text($st) . ")\n" . $self->_startup_logs;
            }
            $launcher_done = 1;
        }
        if ($daemon && !$self->{pid}) {
            my $p = $self->read_pid_file;
            $self->{pid} = $p if $p && kill(0, $p);
        }
        if ((!$daemon || $self->{pid}) && $self->can_connect) {
            return $self;
        }
        sleep 0.05;
    }
    $self->kill9;
    croak "herald did not accept connections on 127.0.0.1:$self->{port} "
        . "within ${timeout}s\n" . $self->_startup_logs;
}

# Starts herald expecting it to fail: waits up to TIMEOUT for it to exit and
# returns (exit code, stderr output, error log).  If it is still running
# (and listening) at the timeout it is killed and the exit code is undef.
sub run_expect_exit
{
    my ($self, %opt) = @_;
    croak "herald is already running" if $self->running;
    my $timeout = $opt{timeout} // 10;
    my $pid = $self->_spawn(%opt);
    my $deadline = time + $timeout;
    my $code;
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            $code = ($? & 127) ? -1 : $? >> 8;
            last;
        }
        sleep 0.05;
    }
    if (!defined $code) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    return ($code, $self->stderr_log(since_start => 1), $self->error_log);
}

sub _status_text
{
    my ($st) = @_;
    return "signal " . ($st & 127) if $st & 127;
    return "exit code " . ($st >> 8);
}

sub _startup_logs
{
    my ($self) = @_;
    return "---- stderr ----\n" . $self->stderr_log(since_start => 1)
        . "---- error log ----\n" . _tail($self->error_log, 60);
}

sub _tail
{
    my ($text, $n) = @_;
    my @l = split /\n/, $text;
    @l = @l[-$n .. -1] if @l > $n;
    return join('', map { "$_\n" } @l);
}

sub can_connect
{
    my ($self) = @_;
    my $s = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $self->{port},
        Proto    => 'tcp',
        Timeout  => 1,
    );
    return 0 unless $s;
    close $s;
    return 1;
}

sub read_pid_file
{
    my ($self) = @_;
    open(my $fh, '<', "$self->{dir}/herald.pid") or return undef;
    my $p = <$fh>;
    return undef unless defined $p && $p =~ /^\s*(\d+)\s*$/;
    return $1;
}

# True while herald is alive; reaps it (and records exit_status) otherwise.
sub running
{
    my ($self) = @_;
    my $pid = $self->{pid} or return 0;
    return 0 unless $self->{owner_pid} == $$;
    if (defined $self->{child} && $self->{child} == $pid) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid) {
            $self->{exit_status} = $?;
            $self->{pid} = undef;
            return 0;
        }
        return 1 if $r == 0;
        $self->{pid} = undef;
        return 0;
    }
    return kill(0, $pid) ? 1 : do { $self->{pid} = undef; 0 };
}

sub exit_status { $_[0]{exit_status} }

# Waits up to TIMEOUT seconds for herald to exit on its own (e.g. after
# "-s stop"); returns true if it did.
sub wait_exit
{
    my ($self, $timeout) = @_;
    $timeout //= 10;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        return 1 unless $self->running;
        sleep 0.05;
    }
    return !$self->running;
}

sub stop
{
    my ($self, %opt) = @_;
    return $self unless $self->running;
    my $sig = $opt{signal} // 'TERM';
    kill $sig, $self->{pid};
    if (!$self->wait_exit($opt{timeout} // 10)) {
        Test::More::diag("herald did not exit after SIG$sig in 10s, "
            . "sending SIGKILL");
        $self->{stop_timed_out} = 1;
        kill 'KILL', $self->{pid};
        $self->wait_exit(5);
    }
    $self->_catlog;
    $self->check_sanitizer;
    return $self;
}

# Under SANITIZE=1 a sanitizer report in herald's stderr fails the test,
# whatever herald's exit status was.
sub check_sanitizer
{
    my ($self) = @_;
    my $err = $self->stderr_log(since_start => 1) // '';
    if ($err =~ /(ERROR: \w+Sanitizer|runtime error:)/) {
        Test::More::fail('no sanitizer report in herald stderr');
        Test::More::diag($err);
    }
    return $self;
}

sub kill9
{
    my ($self) = @_;
    return $self unless $self->running;
    kill 'KILL', $self->{pid};
    $self->wait_exit(10);
    return $self;
}

sub _catlog
{
    my ($self) = @_;
    return unless $ENV{HERALD_TEST_CATLOG};
    Test::More::diag("---- $self->{dir}/error.log ----\n" . $self->error_log);
}

sub DESTROY
{
    my ($self) = @_;
    return unless $self->{owner_pid} && $self->{owner_pid} == $$;
    local ($?, $!, $@);
    $self->stop if $self->{pid};
    delete $LIVE{"$self"};
}

END {
    local ($?, $!, $@);
    for my $t (grep { defined } values %LIVE) {
        next unless $t->{owner_pid} == $$;
        $t->stop if $t->{pid};
    }
}

# ==== files ================================================================

sub _slurp
{
    my ($path) = @_;
    open(my $fh, '<', $path) or return '';
    local $/;
    my $s = <$fh>;
    return $s // '';
}

sub read_file  { _slurp($_[0]->_path($_[1])) }
sub _path      { File::Spec->file_name_is_absolute($_[1]) ? $_[1] : "$_[0]{dir}/$_[1]" }
sub error_log  { _slurp("$_[0]{dir}/error.log") }
sub access_log { _slurp("$_[0]{dir}/access.log") }

sub stderr_log
{
    my ($self, %opt) = @_;
    my $s = _slurp("$self->{dir}/stderr.log");
    $s = substr($s, $self->{stderr_offset} // 0) if $opt{since_start};
    return $s;
}

# Parses deliveries.log (or FILE) into a list of hashes, one per JSON line.
# A torn line (a crash mid-write, then the next line appended to it) is
# salvaged by decoding from the last '{"' that yields valid JSON; the count
# of lines that could not be parsed is kept in $t->{deliveries_bad}.
sub deliveries
{
    my ($self, $file) = @_;
    my $text = _slurp($self->_path($file // 'deliveries.log'));
    my @out;
    my $bad = 0;
    my @lines = split /\n/, $text, -1;
    pop @lines if @lines && $text !~ /\n\z/;    # incomplete last line
    for my $line (@lines) {
        next if $line =~ /^\s*$/;
        my $d = eval { $JSON->decode($line) };
        if (!$d) {
            my $pos = length $line;
            while (($pos = rindex($line, '{"', $pos - 1)) > 0) {
                $d = eval { $JSON->decode(substr($line, $pos)) };
                last if $d;
            }
            $bad++;
        }
        push @out, $d if ref $d eq 'HASH';
    }
    $self->{deliveries_bad} = $bad;
    return wantarray ? @out : \@out;
}

# ==== helpers ==============================================================

# Calls CODE every INTERVAL (0.1s) until it returns true or TIMEOUT (10s)
# passes; returns CODE's last result.
sub wait_for
{
    my ($self, $code, $timeout, $interval) = @_;
    $timeout  //= 10;
    $interval //= 0.1;
    my $deadline = time + $timeout;
    while (1) {
        my $r = $code->();
        return $r if $r;
        return $r if time >= $deadline;
        sleep $interval;
    }
}

sub json_encode { $JSON->encode($_[-1]) }
sub json_decode { my $d = eval { $JSON->decode($_[-1]) }; $d }

# ==== HTTP =================================================================

# One request on a fresh connection (Connection: close).  Options: body
# (string, or a ref encoded as JSON), auth ('key:secret', default
# demo:demo-secret; undef for none), headers {name => value, undef drops a
# default}, version ('1.1'), timeout (10).  Returns a response hash
# {status, reason, version, headers, body, json} (status 0 and error set on
# a transport failure).
sub http
{
    my ($self, $method, $path, %opt) = @_;
    my $c = $self->conn(timeout => $opt{timeout});
    if (!$c->{sock}) {
        return { status => 0, error => $c->{error}, headers => {},
                 body => '', json => undef };
    }
    my $res = $c->request($method, $path, close => 1, %opt);
    $c->close;
    return $res;
}

sub conn
{
    my ($self, %opt) = @_;
    return Herald::Test::Conn->new(port => $self->{port}, %opt);
}

# Builds the bytes of one request; see http() for the options.
sub request_bytes
{
    my ($self, $method, $path, %opt) = @_;
    my $port = ref $self ? $self->{port} : 0;
    return Herald::Test::Conn::build_request($port, $method, $path, %opt);
}

package Herald::Test::Conn;

# A client on one persistent socket: request() for request/response,
# write()/read_response() for pipelining and raw protocol tests.

use strict;
use warnings;

use Carp qw(croak);
use Errno qw(EINTR EAGAIN EWOULDBLOCK);
use IO::Select;
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time);

sub new
{
    my ($class, %opt) = @_;
    my $self = bless {
        port    => $opt{port},
        timeout => $opt{timeout} // 10,
        buf     => '',
        eof     => 0,
    }, $class;
    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $opt{port},
        Proto    => 'tcp',
        Timeout  => $self->{timeout},
    );
    if (!$sock) {
        $self->{error} = "connect to 127.0.0.1:$opt{port}: $@";
        return $self;
    }
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
    binmode $sock;
    $self->{sock} = $sock;
    $self->{sel}  = IO::Select->new($sock);
    $SIG{PIPE} = 'IGNORE';
    return $self;
}

sub sock { $_[0]{sock} }
sub local_port { $_[0]{sock} ? $_[0]{sock}->sockport : undef }

sub build_request
{
    my ($port, $method, $path, %opt) = @_;
    my $version = $opt{version} // '1.1';
    my $auth = exists $opt{auth} ? $opt{auth} : 'demo:demo-secret';

    my $body = $opt{body};
    my $is_json = ref $body ? 1 : 0;
    $body = $Herald::Test::JSON->encode($body) if ref $body;

    my @h;    # [name, value]
    push @h, ['Host', "127.0.0.1:$port"];
    push @h, ['Authorization', 'Basic ' . encode_base64($auth, '')]
        if defined $auth;
    if (defined $body) {
        push @h, ['Content-Type', 'application/json']
            if $is_json || length $body;
        push @h, ['Content-Length', length $body];
    } elsif ($method eq 'POST' || $method eq 'PUT') {
        push @h, ['Content-Length', 0];
    }
    push @h, ['Connection', 'close'] if $opt{close};

    my $extra = $opt{headers} // {};
    for my $name (sort keys %$extra) {
        @h = grep { lc $_->[0] ne lc $name } @h;
        push @h, [$name, $extra->{$name}] if defined $extra->{$name};
    }

    my $req = "$method $path HTTP/$version\r\n";
    $req .= "$_->[0]: $_->[1]\r\n" for @h;
    $req .= "\r\n";
    $req .= $body if defined $body;
    return $req;
}

# Sends one request and reads its response.  Same options as
# Herald::Test::http plus close => 1 (send Connection: close).
sub request
{
    my ($self, $method, $path, %opt) = @_;
    my $req = build_request($self->{port}, $method, $path, %opt);
    if (!$self->write($req)) {
        return _failed("write failed: $self->{error}");
    }
    my $res = eval {
        $self->read_response(head => $method eq 'HEAD',
            timeout => $opt{timeout});
    };
    return _failed($@) if !$res && $@;
    return _failed("connection closed before a response") if !$res;
    return $res;
}

sub _failed
{
    my ($err) = @_;
    chomp $err;
    return { status => 0, error => $err, headers => {}, body => '',
             json => undef };
}

# Writes BYTES fully; returns 1, or 0 with $self->{error} set.
sub write
{
    my ($self, $bytes) = @_;
    my $sock = $self->{sock} or do { $self->{error} = 'not connected'; return 0 };
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($sock, $bytes, length($bytes) - $off, $off);
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN;
            $self->{error} = "$!";
            return 0;
        }
        $off += $n;
    }
    return 1;
}

# Reads more bytes into the buffer before DEADLINE.  Returns the number
# read, 0 at EOF; dies on timeout.
sub _fill
{
    my ($self, $deadline) = @_;
    return 0 if $self->{eof};
    while (1) {
        my $left = $deadline - time;
        die "timeout waiting for the response\n" if $left <= 0;
        next unless $self->{sel}->can_read($left);
        my $n = sysread($self->{sock}, my $chunk, 65536);
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN;
            $self->{eof} = 1;
            $self->{read_error} = "$!";
            return 0;
        }
        if ($n == 0) {
            $self->{eof} = 1;
            return 0;
        }
        $self->{buf} .= $chunk;
        return $n;
    }
}

# Reads one response from the socket.  Returns undef if the connection was
# closed cleanly before any byte of it; dies on timeout or a malformed or
# truncated response.
sub read_response
{
    my ($self, %opt) = @_;
    my $deadline = time + ($opt{timeout} // $self->{timeout});

    while (1) {
        my $end;
        while (($end = index($self->{buf}, "\r\n\r\n")) < 0) {
            if (!$self->_fill($deadline)) {
                return undef if $self->{buf} eq '';
                die "connection closed in the response head: "
                    . _show($self->{buf}) . "\n";
            }
        }
        my $head = substr($self->{buf}, 0, $end + 4, '');
        my ($status_line, @lines) = split /\r\n/, $head;
        $status_line =~ m{^HTTP/(\d\.\d) (\d{3})(?: (.*))?$}
            or die "bad status line: " . _show($status_line) . "\n";
        my %res = (version => $1, status => $2 + 0, reason => $3 // '',
                   head => $head);
        my %h;
        for my $l (@lines) {
            $l =~ /^([^:\s]+):[ \t]*(.*?)[ \t]*$/
                or die "bad header line: " . _show($l) . "\n";
            my $k = lc $1;
            $h{$k} = exists $h{$k} ? "$h{$k}, $2" : $2;
        }
        $res{headers} = \%h;
        next if $res{status} >= 100 && $res{status} < 200;

        my $body = '';
        if ($opt{head} || $res{status} == 204 || $res{status} == 304) {
            # no body
        } elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
            $body = $self->_read_chunked($deadline);
        } elsif (defined $h{'content-length'}) {
            my $len = $h{'content-length'};
            die "bad Content-Length \"$len\"\n" unless $len =~ /^\d+$/;
            while (length $self->{buf} < $len) {
                $self->_fill($deadline)
                    or die "connection closed after "
                        . length($self->{buf}) . " of $len body bytes\n";
            }
            $body = substr($self->{buf}, 0, $len, '');
        } else {
            1 while $self->_fill($deadline);
            $body = $self->{buf};
            $self->{buf} = '';
        }
        $res{body} = $body;
        # raw => 1: no decoding (benchmarks: JSON::PP costs more than herald)
        $res{json} = Herald::Test::json_decode($body) unless $opt{raw};
        return \%res;
    }
}

sub _read_chunked
{
    my ($self, $deadline) = @_;
    my $body = '';
    while (1) {
        my $e;
        while (($e = index($self->{buf}, "\r\n")) < 0) {
            $self->_fill($deadline) or die "closed in a chunk header\n";
        }
        my $line = substr($self->{buf}, 0, $e + 2, '');
        $line =~ /^([0-9a-fA-F]+)/ or die "bad chunk size " . _show($line);
        my $size = hex $1;
        if ($size == 0) {
            while (1) {    # trailers, up to the empty line
                while (($e = index($self->{buf}, "\r\n")) < 0) {
                    $self->_fill($deadline) or die "closed in trailers\n";
                }
                my $t = substr($self->{buf}, 0, $e + 2, '');
                last if $t eq "\r\n";
            }
            last;
        }
        while (length $self->{buf} < $size + 2) {
            $self->_fill($deadline) or die "closed in a chunk\n";
        }
        $body .= substr($self->{buf}, 0, $size, '');
        substr($self->{buf}, 0, 2, '');
    }
    return $body;
}

# Reads N responses (pipelining); returns the list (short if closed).
sub read_responses
{
    my ($self, $n, %opt) = @_;
    my @r;
    for (1 .. $n) {
        my $res = $self->read_response(%opt) or last;
        push @r, $res;
    }
    return @r;
}

# True if the peer closes the connection within TIMEOUT seconds without
# sending anything more (bytes that do arrive are kept in ->{buf}).
sub closed
{
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    while (!$self->{eof}) {
        my $n = eval { $self->_fill($deadline) };
        return 0 if !defined $n;    # timeout: still open
    }
    return 1;
}

sub buffered { $_[0]{buf} }

sub close
{
    my ($self) = @_;
    if ($self->{sock}) {
        close $self->{sock};
        $self->{sock} = undef;
    }
}

sub _show
{
    my ($s) = @_;
    $s = substr($s, 0, 200) . '...' if length $s > 200;
    $s =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
    return "\"$s\"";
}

# ==== send API helpers (issue 3) ===========================================

package Herald::Test;

# ---- test clock -----------------------------------------------------------
#
# herald adds the integer in the file named by HERALD_TEST_CLOCK_FILE (an
# offset in milliseconds) to its clock and re-reads it every 100 ms.  Pass
# $t->clock_env to run(): $t->run(env => $t->clock_env).

sub clock_file { "$_[0]{dir}/test-clock" }

sub clock_env
{
    my ($self) = @_;
    $self->clock_set(0, wait => 0) unless -f $self->clock_file;
    return { HERALD_TEST_CLOCK_FILE => $self->clock_file };
}

sub clock_offset { $_[0]{clock_offset} // 0 }

# Writes the offset (ms) atomically (rename), then waits 0.3 s so every
# thread of herald has re-read it (unless wait => 0).
sub clock_set
{
    my ($self, $ms, %opt) = @_;
    my $path = $self->clock_file;
    open(my $fh, '>', "$path.tmp") or croak "cannot write $path.tmp: $!";
    print $fh int($ms), "\n";
    close $fh or croak "cannot write $path.tmp: $!";
    rename("$path.tmp", $path) or croak "cannot rename to $path: $!";
    $self->{clock_offset} = int($ms);
    sleep($opt{wait} // 0.3) if $opt{wait} // 1;
    return $self;
}

# Moves the test clock forward by MS milliseconds.
sub clock_advance
{
    my ($self, $ms, %opt) = @_;
    return $self->clock_set($self->clock_offset + $ms, %opt);
}

# herald's idea of now, in epoch seconds (real time + the test offset).
sub herald_now { time + $_[0]->clock_offset / 1000 }

# RFC 3339 UTC timestamp for epoch seconds T (second precision).
sub rfc3339
{
    my ($t) = $_[-1];
    my @g = gmtime(int $t);
    return sprintf('%04d-%02d-%02dT%02d:%02d:%02dZ',
        $g[5] + 1900, $g[4] + 1, @g[3, 2, 1, 0]);
}

# ---- assertions -----------------------------------------------------------

# The common error shape {"error":{"code","message","field"?}}: checks
# status, code, a non-empty message and (if FIELD is defined) the field.
# Returns true if all matched; dumps the response otherwise.
sub api_error
{
    my ($self, $r, $status, $code, $field, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = 1;
    $ok &= Test::More::is($r->{status}, $status, "$name: status $status");
    my $e = ref $r->{json} eq 'HASH' ? $r->{json}{error} : undef;
    $ok &= Test::More::ok(ref $e eq 'HASH', "$name: JSON error object");
    $ok &= Test::More::is($e && $e->{code}, $code, "$name: code $code")
        if defined $code;
    $ok &= Test::More::ok($e && defined $e->{message}
        && length $e->{message}, "$name: has a message");
    $ok &= Test::More::is($e && $e->{field}, $field, "$name: field $field")
        if defined $field;
    Test::More::diag(Test::More::explain($r)) unless $ok;
    return $ok;
}

# ---- API shortcuts --------------------------------------------------------

# PUT /v1/users/ID with FIELDS; returns the response.
sub put_user
{
    my ($self, $id, $fields, %opt) = @_;
    return $self->http(PUT => "/v1/users/$id", body => $fields // {}, %opt);
}

# POST /v1/users/ID/devices with DEV; returns the response.
sub add_device
{
    my ($self, $id, $dev, %opt) = @_;
    return $self->http(POST => "/v1/users/$id/devices", body => $dev, %opt);
}

# POST /v1/notifications with BODY; returns the response.
sub send_note
{
    my ($self, $body, %opt) = @_;
    return $self->http(POST => '/v1/notifications', body => $body, %opt);
}

# GET /v1/notifications/ID; returns the decoded JSON (or undef).
sub notification
{
    my ($self, $id, %opt) = @_;
    my $r = $self->http(GET => "/v1/notifications/$id", %opt);
    return $r->{status} == 200 ? $r->{json} : undef;
}

# Polls GET /v1/notifications/ID until CODE->($json) is true (TIMEOUT 10 s);
# returns the last JSON seen (undef if never a 200).
sub wait_notification
{
    my ($self, $id, $code, $timeout) = @_;
    my $last;
    $self->wait_for(sub {
        my $n = $self->notification($id) or return 0;
        $last = $n;
        return $code->($n);
    }, $timeout // 10);
    return $last;
}

# The statuses of the deliveries of notification JSON N, in order.
sub delivery_statuses
{
    my ($self, $n) = @_;
    return map { $_->{status} // '' } @{ref $n eq 'HASH'
        && ref $n->{deliveries} eq 'ARRAY' ? $n->{deliveries} : []};
}

# deliveries.log lines for notification id NID.
sub deliveries_for
{
    my ($self, $nid) = @_;
    return grep { ($_->{notification_id} // '') eq $nid } $self->deliveries;
}

# Waits until deliveries.log has at least N lines for NID (TIMEOUT 10 s);
# returns them.
sub wait_deliveries
{
    my ($self, $nid, $n, $timeout) = @_;
    my @l;
    $self->wait_for(sub {
        @l = $self->deliveries_for($nid);
        @l >= $n;
    }, $timeout // 10);
    return @l;
}

# ---- device material ------------------------------------------------------

# A valid APNs token: 64 hex characters derived from SEED.
sub ios_token
{
    my ($seed) = $_[-1];
    require Digest::SHA;
    return Digest::SHA::sha256_hex("herald-ios-$seed");
}

# ---- the store on disk ----------------------------------------------------

# mdb_dump of db DB of shard SHARD of the stopped store, in hex (HEX set)
# or printable form: (the dump, the env path), or () when it failed.
sub _store_dump
{
    my ($self, $shard, $db, $hex) = @_;
    my $env = sprintf('%s/store/shard-%03d', $self->dir, $shard);
    my $dump = `mdb_dump @{[$hex ? '' : '-p']} -s $db $env`;
    return $? ? () : ($dump, $env);
}

# The value of the key whose bytes are hex HEXKEY in db DB of shard SHARD
# (mdb_dump, lmdb-utils): raw bytes, or undef.
sub store_value
{
    my ($self, $shard, $db, $hexkey) = @_;
    my ($dump) = $self->_store_dump($shard, $db, 1) or return undef;
    return $dump =~ /^ \Q$hexkey\E\n ([0-9a-f]*)$/m ? pack('H*', $1) : undef;
}

# Replaces the value of KEY in db DB of shard SHARD of the stopped store
# with VALUE, written as mdb_dump -p prints it (a record: \01{...); with
# hex => 1, KEY is the key's bytes in hex and VALUE raw bytes. Through
# mdb_dump and mdb_load (lmdb-utils): a record changed by hand. Returns 1
# when KEY was there and the store took the change.
sub store_replace
{
    my ($self, $shard, $db, $key, $value, %opt) = @_;
    my ($dump, $env) = $self->_store_dump($shard, $db, $opt{hex}) or return 0;
    $value = unpack('H*', $value) if $opt{hex};
    my $n = ($dump =~ s/^( \Q$key\E\n) [^\n]*$/$1 $value/m);
    return 0 unless $n == 1;
    open(my $fh, '|-', "mdb_load -s $db $env 2>/dev/null") or return 0;
    print $fh $dump;
    return close($fh) ? 1 : 0;
}

# A valid FCM-looking token from SEED.
sub android_token { 'fcm:' . $_[-1] . ':APA91b' . ('x' x 40) }

# RFC 8291 appendix keys: p256dh (65 bytes, 0x04...) and auth (16 bytes).
our $WEB_P256DH = 'BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4';
our $WEB_AUTH   = 'BTBZMqHH6r4Tts7J_aSIgg';

# A web device body with endpoint https://push.example.net/SEED.
sub web_device
{
    my ($seed) = $_[-1];
    return { platform => 'web', subscription => {
        endpoint => "https://push.example.net/send/$seed",
        keys => { p256dh => $WEB_P256DH, auth => $WEB_AUTH } } };
}

1;
