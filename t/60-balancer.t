#!/usr/bin/perl
# Scaling past one machine: two herald daemons behind a real nginx with
# `hash ... consistent` on the user id taken from the path. Every per-user
# request of a user must reach the same herald; each herald holds only its
# users; sends through the balancer are delivered by the owning herald.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Herald::Test;

Herald::Test->require_binary;
my $nginx = (grep { -x } '/usr/sbin/nginx', '/usr/bin/nginx')[0];
plan skip_all => 'nginx not installed (make deps installs nginx-light)'
    unless $nginx;

my @h = map { Herald::Test->new } 1 .. 2;
$_->default_conf(workers => 1) for @h;
$_->run for @h;

# a third object only for its port, directory and HTTP client: nginx
my $lb = Herald::Test->new;
my $dir = $lb->dir;
my ($p1, $p2) = map { $_->port } @h;
$lb->write_file('nginx.conf', <<"EOF2");
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 256; }
http {
    access_log $dir/nginx-access.log;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    # the user id is in the path of every per-user endpoint
    map \$uri \$herald_user {
        ~^/v1/users/(?<u>[^/]+)  \$u;
        default                  \$uri;
    }
    upstream heralds {
        hash \$herald_user consistent;
        server 127.0.0.1:$p1;
        server 127.0.0.1:$p2;
        keepalive 8;
    }
    server {
        listen 127.0.0.1:@{[ $lb->port ]};
        location / {
            proxy_pass http://heralds;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization \$http_authorization;
        }
    }
}
EOF2
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    open(STDERR, '>', "$dir/nginx-stderr.log");
    exec($nginx, '-c', "$dir/nginx.conf", '-p', $dir) or exit 127;
}
END { kill 'TERM', $pid if $pid; waitpid($pid, 0) if $pid; }
ok($lb->wait_for(sub { $lb->can_connect }, 10), 'nginx listens')
    or BAIL_OUT('nginx did not start: ' . $lb->read_file('nginx-stderr.log'));

my @users = map { "lb-user-$_" } 1 .. 24;
my %home;    # user -> index of the herald that holds it

for my $u (@users) {
    my $r = $lb->http(PUT => "/v1/users/$u",
        body => { email => "$u\@example.com" });
    is($r->{status}, 201, "PUT $u through the balancer");
    my @found = grep { $h[$_]->http(GET => "/v1/users/$u")->{status} == 200 }
        0 .. 1;
    is(scalar @found, 1, "$u is held by exactly one herald");
    $home{$u} = $found[0];
}
my %count;
$count{$_}++ for values %home;
ok($count{0} && $count{1}, 'both heralds hold users '
    . "($count{0}/" . ($count{1} // 0) . ')');

# every further per-user request of a user lands on the same herald
my %sent;
for my $u (@users) {
    my $r = $lb->http(POST => "/v1/users/$u/notifications",
        body => { title => 'Hello', body => "for $u" });
    is($r->{status}, 202, "send to $u through the balancer");
    $sent{$u} = $r->{json}{id};
    my $g = $lb->http(GET => "/v1/users/$u/notifications");
    is($g->{status}, 200, "list of $u through the balancer");
    is($g->{json}{notifications}[0]{id}, $sent{$u},
        "the list of $u shows the send (same herald)");
}
for my $u (@users) {
    my $t = $h[$home{$u}];
    ok($t->wait_for(sub {
        grep { ($_->{notification_id} // '') eq $sent{$u} } $t->deliveries
    }, 10), "notification of $u delivered by its own herald");
    my $other = $h[1 - $home{$u}];
    ok(!(grep { ($_->{user_id} // '') eq $u } $other->deliveries),
        "the other herald never saw $u");
}

$_->stop for @h;
done_testing;
