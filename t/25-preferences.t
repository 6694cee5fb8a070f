#!/usr/bin/perl

# Preferences (issue 3): PUT/GET, opt-out by channel and by category,
# config defaults `category X { opt_in off; }` and `opt_in off email;`.
# An opted-out delivery is recorded "suppressed" (reason "opted_out") and
# never reaches the provider.

use strict;
use warnings;

use Test::More;
use Herald::Test;

my $t = Herald::Test->new;
$t->default_conf(workers => 2, extra => <<'EOF');
category promo  { opt_in off; }
category digest { opt_in off email; }
EOF
$t->run;

my $T = JSON::PP::true();
my $F = JSON::PP::false();

sub put_prefs
{
    my ($uid, $p) = @_;
    return $t->http(PUT => "/v1/users/$uid/preferences", body => $p);
}

# Makes a user with email and phone (and, with devices => 1, an ios and a
# web device).
sub mkuser
{
    my ($uid, %o) = @_;
    my $r = $t->put_user($uid, { email => "$uid\@example.com",
        phone => '+1555' . sprintf('%07d', unpack('%24C*', $uid)) });
    is($r->{status}, 201, "user $uid created") or diag(explain $r);
    if ($o{devices}) {
        $r = $t->add_device($uid, { platform => 'ios',
            token => Herald::Test::ios_token($uid) });
        is($r->{status}, 201, "$uid: ios device") or diag(explain $r);
        $r = $t->add_device($uid, Herald::Test::web_device($uid));
        is($r->{status}, 201, "$uid: web device") or diag(explain $r);
    }
}

# Sends BODY; checks the answer's statuses per channel against EXPECT
# {channel => status}; then checks GET (suppressed ones have reason
# opted_out) and deliveries.log (queued ones arrive, suppressed ones never).
sub send_expect
{
    my ($body, $expect, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = $t->send_note($body);
    is($r->{status}, 202, "$name: 202") or diag(explain $r);
    my $j = $r->{json} // {};
    my %got = map { ($_->{channel} // '?') => $_->{status} }
        @{$j->{deliveries} // []};
    is_deeply(\%got, $expect, "$name: delivery statuses in the answer")
        or diag(explain $j);
    my $id = $j->{id} or return;

    my @sup = grep { $expect->{$_} eq 'suppressed' } keys %$expect;
    my @q = grep { $expect->{$_} eq 'queued' } keys %$expect;
    my $n = $t->notification($id) // {};
    for my $d (@{$n->{deliveries} // []}) {
        my $c = $d->{channel} // '?';
        next unless ($expect->{$c} // '') eq 'suppressed';
        is($d->{status}, 'suppressed', "$name: GET $c status suppressed");
        is($d->{reason}, 'opted_out', "$name: GET $c reason opted_out")
            or diag(explain $d);
    }
    my @l = $t->wait_deliveries($id, scalar @q);
    sleep 0.5;
    @l = $t->deliveries_for($id);
    is_deeply([sort map { $_->{channel} // '?' } @l], [sort @q],
        "$name: deliveries.log has exactly the queued channels")
        or diag(explain \@l);
    return $id;
}

# ==== PUT / GET ============================================================

mkuser('pref-1');
{
    my $p = { channels => { sms => $F, email => $T },
              categories => { marketing => { email => $F, sms => $T } } };
    my $r = put_prefs('pref-1', $p);
    is($r->{status}, 200, 'PUT preferences: 200') or diag(explain $r);
    my $got = $r->{json} && $r->{json}{preferences} || {};
    ok(defined $got->{channels}{sms} && !$got->{channels}{sms},
        'PUT answer: channels.sms false') or diag(explain $got);
    ok(defined $got->{categories}{marketing}{email}
        && !$got->{categories}{marketing}{email},
        'PUT answer: categories.marketing.email false');

    $r = $t->http(GET => '/v1/users/pref-1/preferences');
    is($r->{status}, 200, 'GET preferences: 200') or diag(explain $r);
    is_deeply($r->{json} && $r->{json}{preferences}, $got,
        'GET preferences returns what PUT returned') or diag(explain $r);
    $r = $t->http(GET => '/v1/users/pref-1');
    is_deeply($r->{json} && $r->{json}{user}{preferences}, $got,
        'GET user: the same preferences') or diag(explain $r);

    # PUT replaces
    $r = put_prefs('pref-1', { channels => { push => $F } });
    is($r->{status}, 200, 'PUT preferences again: 200') or diag(explain $r);
    $r = $t->http(GET => '/v1/users/pref-1/preferences');
    my $p2 = $r->{json} && $r->{json}{preferences} || {};
    ok(defined $p2->{channels}{push} && !$p2->{channels}{push},
        'replace: channels.push false') or diag(explain $p2);
    ok(!(defined $p2->{channels}{sms} && !$p2->{channels}{sms}),
        'replace: the sms opt-out is gone') or diag(explain $p2);
    ok(!($p2->{categories} && $p2->{categories}{marketing}
         && defined $p2->{categories}{marketing}{email}
         && !$p2->{categories}{marketing}{email}),
        'replace: the marketing opt-out is gone') or diag(explain $p2);

    # validation
    $r = put_prefs('pref-1', { channels => { pigeon => $F } });
    is($r->{status}, 400, 'PUT channels.pigeon: 400') or diag(explain $r);
    $r = put_prefs('pref-1', { channels => { sms => 'no' } });
    is($r->{status}, 400, 'PUT channels.sms not a boolean: 400')
        or diag(explain $r);
    $r = put_prefs('pref-1', { channels => [] });
    is($r->{status}, 400, 'PUT channels not an object: 400')
        or diag(explain $r);
    $r = put_prefs('pref-1', { categories => { marketing => { fax => $F } } });
    is($r->{status}, 400, 'PUT categories.marketing.fax: 400')
        or diag(explain $r);
    $r = put_prefs('pref-1', { categories => { marketing => { email => 0 } } });
    is($r->{status}, 400, 'PUT category switch not a boolean: 400')
        or diag(explain $r);
    $r = put_prefs('pref-1', { colour => 'blue' });
    $t->api_error($r, 400, 'invalid_field', 'colour', 'PUT unknown field');
    $r = $t->http(PUT => '/v1/users/pref-1/preferences', body => '[]');
    $t->api_error($r, 400, 'invalid_json', undef, 'PUT body []');
    $r = $t->http(GET => '/v1/users/pref-1/preferences');
    ok($r->{json} && $r->{json}{preferences}{channels}
        && defined $r->{json}{preferences}{channels}{push}
        && !$r->{json}{preferences}{channels}{push},
        'bad PUTs left the preferences alone') or diag(explain $r);

    $r = put_prefs('pref-nobody', { channels => { sms => $F } });
    $t->api_error($r, 404, 'not_found', undef, 'PUT preferences unknown user');
    $r = $t->http(GET => '/v1/users/pref-nobody/preferences');
    $t->api_error($r, 404, 'not_found', undef, 'GET preferences unknown user');
}

# ==== opt-out by channel ===================================================

mkuser('pref-ch', devices => 1);
{
    my $r = put_prefs('pref-ch', { channels => { sms => $F } });
    is($r->{status}, 200, 'pref-ch: sms off') or diag(explain $r);
    send_expect({ user_id => 'pref-ch', title => 'T', body => 'all' },
        { email => 'queued', sms => 'suppressed', push => 'queued',
          web => 'queued' }, 'channel opt-out, every channel');
    send_expect({ user_id => 'pref-ch', channels => ['sms'], body => 'sms' },
        { sms => 'suppressed' }, 'channel opt-out, sms only');

    $r = put_prefs('pref-ch', { channels => { push => $F, web => $F } });
    send_expect({ user_id => 'pref-ch', body => 'all again' },
        { email => 'queued', sms => 'queued', push => 'suppressed',
          web => 'suppressed' }, 'push and web off, sms back on');

    $r = put_prefs('pref-ch', {});
    send_expect({ user_id => 'pref-ch', body => 'defaults' },
        { email => 'queued', sms => 'queued', push => 'queued',
          web => 'queued' }, 'empty preferences: everything on');
}

# ==== opt-out by category ==================================================

mkuser('pref-cat');
{
    my $r = put_prefs('pref-cat',
        { categories => { marketing => { email => $F } } });
    is($r->{status}, 200, 'pref-cat: marketing email off') or diag(explain $r);
    send_expect({ user_id => 'pref-cat', category => 'marketing',
        body => 'm' }, { email => 'suppressed', sms => 'queued' },
        'category marketing: email suppressed, sms sent');
    send_expect({ user_id => 'pref-cat', category => 'news', body => 'n' },
        { email => 'queued', sms => 'queued' },
        'category news: both sent');
    send_expect({ user_id => 'pref-cat', body => 'none' },
        { email => 'queued', sms => 'queued' }, 'no category: both sent');
}

# ==== config default: category promo { opt_in off; } =======================

mkuser('pref-promo');
{
    send_expect({ user_id => 'pref-promo', category => 'promo', body => 'p' },
        { email => 'suppressed', sms => 'suppressed' },
        'promo (opt_in off), no opt-in: all suppressed');
    send_expect({ user_id => 'pref-promo', category => 'other',
        body => 'o' }, { email => 'queued', sms => 'queued' },
        'another category is not affected by promo');
    my $r = put_prefs('pref-promo',
        { categories => { promo => { email => $T } } });
    is($r->{status}, 200, 'pref-promo: opted in to promo email')
        or diag(explain $r);
    send_expect({ user_id => 'pref-promo', category => 'promo', body => 'p2' },
        { email => 'queued', sms => 'suppressed' },
        'promo after opting in to email: email sent, sms suppressed');

    # the channel switch off wins over the category opt-in
    $r = put_prefs('pref-promo', { channels => { email => $F },
        categories => { promo => { email => $T } } });
    send_expect({ user_id => 'pref-promo', category => 'promo', body => 'p3' },
        { email => 'suppressed', sms => 'suppressed' },
        'promo opt-in with the email channel off: suppressed');
}

# ==== config default: category digest { opt_in off email; } ================

mkuser('pref-digest');
{
    send_expect({ user_id => 'pref-digest', category => 'digest',
        body => 'd' }, { email => 'suppressed', sms => 'queued' },
        'digest (opt_in off email): email suppressed, sms sent');
    my $r = put_prefs('pref-digest',
        { categories => { digest => { email => $T } } });
    is($r->{status}, 200, 'pref-digest: opted in to digest email')
        or diag(explain $r);
    send_expect({ user_id => 'pref-digest', category => 'digest',
        body => 'd2' }, { email => 'queued', sms => 'queued' },
        'digest after opting in: both sent');
    $r = put_prefs('pref-digest',
        { categories => { digest => { sms => $F } } });
    send_expect({ user_id => 'pref-digest', category => 'digest',
        body => 'd3' }, { email => 'suppressed', sms => 'suppressed' },
        'digest with sms off and no email opt-in: both suppressed');
}

$t->stop;
ok(!$t->{stop_timed_out}, 'herald stopped on SIGTERM');
done_testing();
