#!/usr/bin/perl
# Templates: from the config (with locales and files) and from the API
# (stored, kept across restarts), rendered at ingest with the user's
# locale and {{user.*}}, HTML-escaped in email html only, with precise 422s.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Herald::Test;

Herald::Test->require_binary;

my $t = Herald::Test->new;
$t->write_file('welcome.html', "<p>Hello {{name}}, {{#coupon}}code {{coupon}}{{/coupon}}</p>\n");
my $dir = $t->dir;
$t->default_conf(workers => 2, extra => <<"CONF");
template welcome {
    push_title "Welcome, {{name}}";
    push_body "Your account {{user.email}} is ready";
    email_subject "Welcome, {{name}}";
    email_text "Hello {{name}}";
    email_html_file $dir/welcome.html;
    sms_body "Hi {{name}}";
    locale pt {
        push_title "Bem-vindo, {{name}}";
        email_subject "Bem-vindo, {{name}}";
    }
    locale pt-BR {
        push_title "Bem-vindo ao Brasil, {{name}}";
    }
}
CONF
$t->run;

sub user { $t->http(PUT => "/v1/users/$_[0]", body => $_[1])->{status} }
sub send_t { $t->http(POST => '/v1/notifications', body => $_[0]) }
sub line_of {
    my ($nid, $ch) = @_;
    my $line;
    $t->wait_for(sub {
        ($line) = grep { $_->{notification_id} eq $nid && $_->{channel} eq $ch }
            $t->deliveries;
        $line;
    }, 10);
    return $line // {};
}

is(user('tp1', { email => 'tp1@example.com', locale => 'pt-BR',
    phone => '+15550003333' }), 201, 'user pt-BR');
is(user('tp2', { email => 'tp2@example.com', locale => 'pt-PT' }), 201,
    'user pt-PT');
is(user('tp3', { email => 'tp3@example.com', locale => 'de' }), 201,
    'user de');
$t->http(POST => '/v1/users/tp1/devices', body => { platform => 'android',
    token => 'fcm-token-tp1' });

my $r = send_t({ user_id => 'tp1', template => 'welcome',
    data => { name => 'Ana <b>', coupon => 'X1' } });
is($r->{status}, 202, 'templated send: 202') or diag explain $r;
my $push = line_of($r->{json}{id}, 'push');
is($push->{title}, 'Bem-vindo ao Brasil, Ana <b>', 'pt-BR variant, no escaping in push');
is($push->{body}, 'Your account tp1@example.com is ready',
    'missing field in the locale: the default; {{user.email}} looked up');
my $mail = line_of($r->{json}{id}, 'email');
is($mail->{subject}, 'Bem-vindo, Ana <b>', 'pt-BR falls back to pt');
is($mail->{html}, "<p>Hello Ana &lt;b&gt;, code X1</p>\n",
    'email html from a file, escaped, with a section');
is($mail->{text}, 'Hello Ana <b>', 'email text is not escaped');
is(line_of($r->{json}{id}, 'sms')->{body}, 'Hi Ana <b>', 'sms part');

$r = send_t({ user_id => 'tp2', template => 'welcome', channels => ['email'],
    data => { name => 'Rui' } });
is(line_of($r->{json}{id}, 'email')->{subject}, 'Bem-vindo, Rui', 'pt-PT falls back to pt');
like(line_of($r->{json}{id}, 'email')->{html}, qr/^<p>Hello Rui, <\/p>/,
    'a missing section is left out');
$r = send_t({ user_id => 'tp3', template => 'welcome', channels => ['email'],
    data => { name => 'Jo' } });
is(line_of($r->{json}{id}, 'email')->{subject}, 'Welcome, Jo', 'de: the default');

$r = send_t({ user_id => 'tp3', template => 'welcome', channels => ['email'],
    data => { name => 'Jo' }, email => { subject => 'Override' } });
is(line_of($r->{json}{id}, 'email')->{subject}, 'Override',
    'inline content wins over the template');

$r = send_t({ user_id => 'tp3', template => 'welcome', data => {} });
is($r->{status}, 422, 'a missing variable: 422');
is($r->{json}{error}{code}, 'template_variable_missing', 'code');
like($r->{json}{error}{message}, qr/"name"/, 'names the variable');
$r = send_t({ user_id => 'tp3', template => 'nope', data => {} });
is($r->{status}, 422, 'an unknown template: 422');
is($r->{json}{error}{field}, 'template', 'field template');
$r = send_t({ user_id => 'tp3', template => 'welcome', data => 'x' });
is($r->{status}, 400, 'data not an object: 400');

# ==== API templates ====
my $def = { parts => { email => { subject => 'Order {{order.id}}',
    text => '{{#items}}- {{name}}\n{{/items}}' } },
    locales => { fr => { email => { subject => 'Commande {{order.id}}' } } } };
$r = $t->http(PUT => '/v1/templates/order', body => $def);
is($r->{status}, 201, 'PUT template: 201') or diag explain $r;
is($t->http(PUT => '/v1/templates/order', body => $def)->{status}, 200,
    'PUT again: 200');
is($t->http(GET => '/v1/templates/order')->{json}{template}{source}, 'api',
    'GET: source api');
is($t->http(GET => '/v1/templates/welcome')->{json}{template}{source},
    'config', 'GET: a config template');
my @names = map { $_->{name} } @{ $t->http(GET => '/v1/templates')->{json}{templates} };
is_deeply([sort @names], ['order', 'welcome'], 'GET /v1/templates');
is($t->http(PUT => '/v1/templates/welcome', body => $def)->{status}, 409,
    'a config template cannot be replaced');
is($t->http(DELETE => '/v1/templates/welcome')->{status}, 409,
    'nor deleted');
$r = $t->http(PUT => '/v1/templates/bad', body => { parts => { email => {
    subject => 'Hi {{#open}}' } } });
is($r->{status}, 422, 'a template that does not parse: 422');
is($r->{json}{error}{field}, 'parts.email.subject', 'names the part');
like($r->{json}{error}{message}, qr/1:\d+/, 'with line:column');
is($t->http(PUT => '/v1/templates/bad', body => { parts => { fax => {
    body => 'x' } } })->{status}, 422, 'an unknown channel: 422');
is($t->http(GET => '/v1/templates/order', auth => 'ro:ro-secret')->{status},
    403, 'templates need the admin scope');

$r = send_t({ user_id => 'tp3', template => 'order', channels => ['email'],
    data => { order => { id => 42 }, items => [{ name => 'a' }, { name => 'b' }] } });
is($r->{status}, 202, 'send with the API template');
my $l = line_of($r->{json}{id}, 'email');
is($l->{subject}, 'Order 42', 'number rendered');
is($l->{text}, "- a\\n- b\\n", 'array section') or diag explain $l;

# kept across a restart, deletable
$t->stop;
$t->run;
is($t->http(GET => '/v1/templates/order')->{status}, 200, 'kept across a restart');
is($t->http(DELETE => '/v1/templates/order')->{status}, 200, 'DELETE');
is($t->http(GET => '/v1/templates/order')->{status}, 404, 'gone');
is(send_t({ user_id => 'tp3', template => 'order', data => {} })->{status},
    422, 'a deleted template cannot be used');

# ==== config errors ====
my $t2 = Herald::Test->new;
$t2->default_conf(extra => "template broken {\n    sms_body \"{{#x}}\";\n}\n");
my ($rc, $msg) = $t2->test_conf;
isnt($rc, 0, 'a broken config template: -t fails');
like($msg, qr/template "broken".* in \S+herald\.conf:\d+/, 'with file:line');

$t->stop;
done_testing;
