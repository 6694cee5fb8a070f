#!/usr/bin/perl
# What outside parties call without an API key: the one-click unsubscribe
# link of an email (RFC 8058, signed token) and Twilio status callbacks
# (X-Twilio-Signature, HMAC-SHA1 over the URL and the sorted form).

use strict;
use warnings;
use Test::More;
use Digest::SHA qw(hmac_sha1_base64);
use lib 't/lib';
use Herald::Test;

Herald::Test->require_binary;

my $t = Herald::Test->new;
my $CB = 'https://herald.example.com/v1/callbacks/twilio';
$t->default_conf(workers => 2, extra => <<"CONF");
provider tw {
    type twilio;
    account_sid AC0123456789abcdef0123456789abcdef;
    auth_token  tw-auth-token-1;
    from +15550009999;
    status_callback $CB;
}
CONF
$t->run;

$t->http(PUT => '/v1/users/cb1', body => { email => 'cb1@example.com',
    phone => '+15550001234' });

# ==== one-click unsubscribe ====
my $r = $t->http(POST => '/v1/notifications',
    body => { user_id => 'cb1', channels => ['email'], title => 'T',
              body => 'news' });
is($r->{status}, 202, 'email sent');
my $first_nid = $r->{json}{id};
ok($t->wait_for(sub { @{ $t->deliveries } >= 1 }, 10), 'delivered to the sink');
my ($line) = grep { $_->{channel} eq 'email' } $t->deliveries;
my $token = $line->{unsubscribe_token} // '';
like($token, qr/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/, 'a signed token');

(my $forged = $token) =~ s/(.)$/$1 eq 'A' ? 'B' : 'A'/e;
is($t->http(POST => "/v1/unsubscribe/$forged", auth => undef,
    body => 'List-Unsubscribe=One-Click')->{status}, 404,
    'a forged token: 404');
$r = $t->http(GET => "/v1/unsubscribe/$token", auth => undef);
is($r->{status}, 200, 'GET shows a page');
like($r->{body}, qr/<form method="post">/, 'with a form to confirm');
is($t->http(GET => '/v1/users/cb1/preferences')->{json}{preferences}
    {channels}{email}, undef, 'GET alone does not unsubscribe');

$r = $t->http(POST => "/v1/unsubscribe/$token", auth => undef,
    body => 'List-Unsubscribe=One-Click',
    headers => { 'Content-Type' => 'application/x-www-form-urlencoded' });
is($r->{status}, 200, 'one-click POST: 200');
is($r->{json}{unsubscribed}, JSON::PP::true(), 'unsubscribed');
ok(!$t->http(GET => '/v1/users/cb1/preferences')->{json}{preferences}
    {channels}{email}, 'the email switch is off');
is($t->http(POST => "/v1/unsubscribe/$token", auth => undef,
    body => 'List-Unsubscribe=One-Click')->{status}, 200,
    'a replay changes nothing and answers the same');
my @tl = map { $_->{event} } @{ $t->http(GET => "/v1/notifications/$first_nid")
    ->{json}{deliveries}[0]{timeline} };
ok(grep({ $_ eq 'unsubscribed' } @tl), 'the email shows "unsubscribed"')
    or diag explain \@tl;
$r = $t->http(POST => '/v1/notifications',
    body => { user_id => 'cb1', channels => ['email'], body => 'more news' });
is($r->{json}{deliveries}[0]{status}, 'suppressed', 'next email suppressed');

# ==== Twilio status callbacks ====
$r = $t->http(POST => '/v1/notifications',
    body => { user_id => 'cb1', channels => ['sms'], body => 'code 1234' });
my $did = $r->{json}{deliveries}[0]{id};
ok($t->wait_for(sub {
    $t->http(GET => "/v1/notifications/$r->{json}{id}")->{json}
        {deliveries}[0]{status} eq 'delivered' }, 10), 'sms delivered');

sub callback
{
    my ($params, %opt) = @_;
    my $query = "delivery=$did";
    my $url = "$CB?$query";
    my $data = $url . join('', map { $_ . $params->{$_} } sort keys %$params);
    my $sig = hmac_sha1_base64($data, $opt{token} // 'tw-auth-token-1');
    $sig .= '=' while length($sig) % 4;
    my $body = join('&', map { "$_=" . uri($params->{$_}) } sort keys %$params);
    return $t->http(POST => "/v1/callbacks/twilio?$query", auth => undef,
        body => $body,
        headers => { 'X-Twilio-Signature' => $opt{sig} // $sig,
                     'Content-Type' => 'application/x-www-form-urlencoded' });
}
sub uri { my $s = shift; $s =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge; $s }

my %p = (AccountSid => 'AC0123456789abcdef0123456789abcdef',
         MessageSid => 'SM00000000000000000000000000000001',
         MessageStatus => 'sent', To => '+15550001234');
is(callback(\%p)->{status}, 204, 'signed "sent" callback: 204');
is(callback(\%p, token => 'wrong')->{status}, 403, 'a bad signature: 403');
is(callback({ %p, AccountSid => 'ACother' })->{status}, 403,
    'an unknown account: 403');
is(callback(\%p, sig => 'AAAA')->{status}, 403, 'a garbled signature: 403');
my $d = $t->http(GET => "/v1/notifications/$r->{json}{id}")->{json}{deliveries}[0];
is($d->{status}, 'delivered', 'rejected callbacks changed nothing');
ok(grep({ ($_->{detail} // '') eq 'twilio sent' } @{ $d->{timeline} }),
    'the "sent" callback is on the timeline');

is(callback({ %p, MessageStatus => 'undelivered', ErrorCode => '30005' })
    ->{status}, 204, 'undelivered callback: 204');
$d = $t->http(GET => "/v1/notifications/$r->{json}{id}")->{json}{deliveries}[0];
is($d->{status}, 'failed', 'undelivered: the delivery failed');
is($d->{last_error}, 'twilio undelivered 30005', 'with the carrier code');

$t->stop;
done_testing;
