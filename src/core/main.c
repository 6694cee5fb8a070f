/*
 * main.c: the main thread: command line, configuration, store and
 * listeners, daemon mode and pid file, then signals for the life of the
 * process (sigwait: no handlers). Workers do everything else.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <ares.h>
#include <event2/event.h>
#include <jansson.h>
#include <lmdb.h>
#include <nghttp2/nghttp2ver.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>

#include "core/herald.h"
#include "core/conf.h"
#include "core/log.h"
#include "core/sign.h"
#include "core/worker.h"
#include "http/api.h"
#include "http/http.h"
#include "provider/provider.h"
#include "provider/webpush.h"
#include "send/alert.h"
#include "send/dispatch.h"
#include "send/templates.h"
#include "send/webhook.h"
#include "store/store.h"

/* Per-worker modules, in start order (stop runs the same order). */
static const struct hd_module *modules[] = {
    &hd_provider_module, &hd_dispatch_module, &hd_webhook_module,
    &hd_alert_module,    &hd_http_module,     &hd_status_module,
};

static const struct hd_log main_log = {-1, -1, 0, NULL};

static void
usage(void)
{
    fprintf(stderr,
            "usage: herald [-h] [-v] [-V] [-t] [-c file] [-s signal]\n"
            "\n"
            "  -h            this help\n"
            "  -v            show version and exit\n"
            "  -V            show version and build options and exit\n"
            "  -t            test the configuration and exit\n"
            "  -c file       configuration file (default: conf/herald.conf)\n"
            "  -s signal     send signal to the daemon: stop, quit, reload, "
            "reopen\n"
            "  -k            read an API secret on stdin, print its salted "
            "hash for\n"
            "                \"secret\" in herald.conf\n"
            "  -g vapid      print a new VAPID key (PEM) for Web Push; the "
            "browsers'\n"
            "                applicationServerKey goes to stderr\n");
}

static void
version(int full)
{
    fprintf(stderr, "herald version: herald/%s\n", HD_VERSION);
    if (!full)
        return;
    fprintf(stderr,
            "built with libevent %s, nghttp2 %s, %s, %s, c-ares %s, "
            "jansson %s\n",
            event_get_version(), NGHTTP2_VERSION, OPENSSL_VERSION_TEXT,
            MDB_VERSION_STRING, ares_version(NULL), JANSSON_VERSION);
#ifdef HD_BUILD_CFLAGS
    fprintf(stderr, "configure arguments: CFLAGS=\"%s\"\n", HD_BUILD_CFLAGS);
#endif
}

static int
signal_daemon(struct hd_conf *cf, const char *name)
{
    static const struct {
        const char *name;
        int sig;
    } sigs[] = {{"stop", SIGTERM},
                {"quit", SIGQUIT},
                {"reload", SIGHUP},
                {"reopen", SIGUSR1}};
    int sig = 0;
    long pid;
    FILE *f;

    for (size_t i = 0; i < HD_NELEMS(sigs); i++)
        if (strcmp(name, sigs[i].name) == 0)
            sig = sigs[i].sig;
    if (sig == 0) {
        fprintf(stderr, "herald: invalid option: \"-s %s\"\n", name);
        return 1;
    }
    f = fopen(cf->pid, "r");
    if (f == NULL) {
        fprintf(stderr, "herald: open() \"%s\" failed (%d: %s)\n", cf->pid,
                errno, strerror(errno));
        return 1;
    }
    if (fscanf(f, "%ld", &pid) != 1 || pid <= 1) {
        fclose(f);
        fprintf(stderr, "herald: invalid PID number in \"%s\"\n", cf->pid);
        return 1;
    }
    fclose(f);
    if (kill((pid_t)pid, sig) != 0) {
        fprintf(stderr, "herald: kill(%ld, %d) failed (%d: %s)\n", pid, sig,
                errno, strerror(errno));
        return 1;
    }
    return 0;
}

/* Where have (the configuration in force) listens on lc's address: 2
 * with the same ssl flag, 1 with the other, 0 not. */
static int
listening(const struct hd_conf *have, const struct hd_listen_conf *lc)
{
    int found = 0;
    for (int i = 0; have != NULL && i < have->nlisten; i++)
        if (strcmp(have->listen[i].text, lc->text) == 0)
            found = have->listen[i].ssl == lc->ssl ? 2 : found > 1 ? 2 : 1;
    return found;
}

/* Opens nworkers listening sockets with SO_REUSEPORT for each address of
 * cf that have (NULL at start) does not listen on alike, after checking
 * that nobody else holds the address; the others stay -1. On error every
 * socket opened here is closed again and err says why. */
static int
open_listeners(const struct hd_conf *cf, const struct hd_conf *have,
               int nworkers, int (*fds)[HD_MAX_LISTEN], char *err,
               size_t errlen)
{
    int one = 1;

    for (int w = 0; w < nworkers; w++)
        for (int l = 0; l < HD_MAX_LISTEN; l++)
            fds[w][l] = -1;
    for (int l = 0; l < cf->nlisten; l++) {
        const struct hd_listen_conf *lc = &cf->listen[l];
        int in_use = listening(have, lc);

        if (in_use == 2)
            continue; /* the workers keep theirs */
        if (in_use == 0) {
            /* without SO_REUSEPORT, bind fails if anyone holds the port;
             * an address we hold with the other ssl flag is ours to
             * share until the workers close the old sockets */
            int probe =
                socket(lc->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
            setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (lc->addr.ss_family == AF_INET6)
                setsockopt(probe, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
            if (bind(probe, (struct sockaddr *)&lc->addr, lc->addrlen) != 0) {
                snprintf(err, errlen, "bind() to %s failed (%d: %s)", lc->text,
                         errno, strerror(errno));
                close(probe);
                goto fail;
            }
            close(probe);
        }
        for (int w = 0; w < nworkers; w++) {
            int fd = socket(lc->addr.ss_family,
                            SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                snprintf(err, errlen, "socket() for %s failed (%d: %s)",
                         lc->text, errno, strerror(errno));
                goto fail;
            }
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
            if (lc->addr.ss_family == AF_INET6)
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
            if (bind(fd, (struct sockaddr *)&lc->addr, lc->addrlen) != 0 ||
                listen(fd, 4096) != 0) {
                snprintf(err, errlen, "bind() to %s failed (%d: %s)", lc->text,
                         errno, strerror(errno));
                close(fd);
                goto fail;
            }
            fds[w][l] = fd;
        }
    }
    return HD_OK;

fail:
    for (int w = 0; w < nworkers; w++)
        for (int l = 0; l < HD_MAX_LISTEN; l++)
            if (fds[w][l] >= 0) {
                close(fds[w][l]);
                fds[w][l] = -1;
            }
    return HD_ERROR;
}

/* Whether cf listens on other addresses (or ssl flags) than have. */
static int
listeners_differ(const struct hd_conf *cf, const struct hd_conf *have)
{
    if (cf->nlisten != have->nlisten)
        return 1;
    for (int l = 0; l < cf->nlisten; l++)
        if (listening(have, &cf->listen[l]) != 2)
            return 1;
    return 0;
}

static uid_t chown_uid;
static gid_t chown_gid;

static int
chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (lchown(path, chown_uid, chown_gid) != 0)
        hd_log(HD_LOG_WARN, &main_log, errno, "chown() \"%s\" failed", path);
    return 0;
}

/* "user NAME [GROUP];": once everything that needs root is open (the
 * listeners below 1024, the store, the logs), hand the files herald keeps
 * writing to the user and become it for good. */
static int
drop_root(const struct hd_conf *cf)
{
    struct passwd *pw;
    struct group *gr = NULL;

    if (geteuid() != 0) {
        hd_log(HD_LOG_WARN, &main_log, 0,
               "\"user %s\" ignored: herald is not running as root", cf->user);
        return HD_OK;
    }
    pw = getpwnam(cf->user);
    if (pw == NULL) {
        fprintf(stderr, "herald: unknown user \"%s\" in \"user\"\n", cf->user);
        return HD_ERROR;
    }
    if (cf->group && (gr = getgrnam(cf->group)) == NULL) {
        fprintf(stderr, "herald: unknown group \"%s\" in \"user\"\n",
                cf->group);
        return HD_ERROR;
    }
    chown_uid = pw->pw_uid;
    chown_gid = gr ? gr->gr_gid : pw->pw_gid;
    nftw(cf->store.path, chown_one, 16, FTW_PHYS);
    if (cf->error_log && strcmp(cf->error_log, "stderr") != 0)
        chown_one(cf->error_log, NULL, 0, NULL);
    if (cf->access_log)
        chown_one(cf->access_log, NULL, 0, NULL);
    for (int i = 0; i < cf->nproviders; i++) {
        const struct hd_conf_kv *kv =
            hd_conf_kv_find(&cf->providers[i], "path");
        if (kv && strcmp(cf->providers[i].type, "log") == 0 &&
            strncmp(kv->args[0], "/dev/", 5) != 0)
            chown_one(kv->args[0], NULL, 0, NULL);
    }
    chown_one(cf->pid, NULL, 0, NULL);
    if (setgroups(0, NULL) != 0 || setgid(chown_gid) != 0 ||
        setuid(chown_uid) != 0) {
        fprintf(stderr, "herald: cannot become \"%s\": %s\n", cf->user,
                strerror(errno));
        return HD_ERROR;
    }
    if (setuid(0) == 0) { /* must be impossible now */
        fprintf(stderr, "herald: could regain root after \"user\"\n");
        return HD_ERROR;
    }
    hd_log(HD_LOG_NOTICE, &main_log, 0, "running as user %s (uid %d)", cf->user,
           (int)chown_uid);
    return HD_OK;
}

static int
daemonize(void)
{
    int fd;

    switch (fork()) {
    case -1:
        return HD_ERROR;
    case 0:
        break;
    default:
        _exit(0);
    }
    if (setsid() < 0)
        return HD_ERROR;
    umask(0027);
    fd = open("/dev/null", O_RDWR);
    if (fd < 0)
        return HD_ERROR;
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2); /* errors go to the error log from here on */
    if (fd > 2)
        close(fd);
    return HD_OK;
}

static int
write_pid(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return HD_ERROR;
    fprintf(f, "%ld\n", (long)getpid());
    fclose(f);
    return HD_OK;
}

static int
conf_open_logs(struct hd_conf *cf)
{
    if (hd_log_open(cf->error_log, cf->log_level) != HD_OK) {
        fprintf(stderr, "herald: open() \"%s\" failed (%d: %s)\n",
                cf->error_log, errno, strerror(errno));
        return HD_ERROR;
    }
    if (hd_access_log_open(cf->access_log) != HD_OK) {
        fprintf(stderr, "herald: open() \"%s\" failed (%d: %s)\n",
                cf->access_log, errno, strerror(errno));
        return HD_ERROR;
    }
    return HD_OK;
}

/* SIGHUP: parse anew. Only a configuration that parsed whole, whose
 * providers and webhook TLS contexts all built and whose new listeners
 * all bound replaces the old one; then the workers take it, the
 * providers, the webhooks' pools and the listeners at their next inbox
 * turn. workers and store are fixed at start: a change there is
 * reported, not applied. */
static void
reload(const char *file)
{
    char err[1024];
    struct hd_conf *cf = hd_conf_load(file, err, sizeof(err)), *old;
    struct hd_provider_table *pt = NULL;
    int(*fds)[HD_MAX_LISTEN] = NULL;
    SSL_CTX *ssl = NULL;

    old = hd_cycle.conf;
    if (cf == NULL)
        goto refuse;
    if (hd_providers_check(cf, err, sizeof(err)) != HD_OK ||
        hd_templates_check(cf, err, sizeof(err)) != HD_OK)
        goto refuse_conf;
    /* an unchanged provider set keeps its table: no connection drops */
    if (hd_providers_changed(cf) &&
        (pt = hd_providers_build(cf, err, sizeof(err))) == NULL)
        goto refuse_conf;
    /* certificate files are read anew: a renewed one takes effect */
    if (hd_http_ssl_needed(cf) &&
        (ssl = hd_http_ssl_load(cf, err, sizeof(err))) == NULL)
        goto refuse_providers;
    /* the webhooks' URLs and CA files: workers rebuild pools on a change */
    if (hd_webhook_prepare(cf, err, sizeof(err)) != HD_OK ||
        hd_alert_prepare(cf, err, sizeof(err)) != HD_OK)
        goto refuse_prepared;
    if (listeners_differ(cf, old)) {
        fds = hd_calloc(hd_cycle.nworkers * sizeof(*fds));
        if (open_listeners(cf, old, hd_cycle.nworkers, fds, err, sizeof(err)) !=
            HD_OK)
            goto refuse_prepared;
    }

    if (cf->workers != old->workers ||
        strcmp(cf->store.path, old->store.path) != 0 ||
        cf->store.shards != old->store.shards ||
        cf->store.sync != old->store.sync)
        hd_log(HD_LOG_WARN, &main_log, 0,
               "workers and store changes take effect on restart");
    if (hd_log_open(cf->error_log, cf->log_level) != HD_OK ||
        hd_access_log_open(cf->access_log) != HD_OK)
        hd_log(HD_LOG_ERR, &main_log, errno, "reopening logs failed");
    if (hd_templates_reconf(cf, err, sizeof(err)) != HD_OK)
        hd_log(HD_LOG_ERR, &main_log, 0, "templates: %s", err);
    if (pt != NULL) {
        /* before the config: a worker switches providers, then config */
        hd_providers_publish(pt);
        hd_log(HD_LOG_NOTICE, &main_log, 0,
               "providers rebuilt: %d provider(s); deliveries in flight "
               "finish on the old ones",
               cf->nproviders);
    }
    if (ssl != NULL)
        hd_http_ssl_set(ssl);
    /* before the config: a worker takes the context its conf names */
    hd_webhook_commit();
    hd_alert_commit();
    for (int l = 0; fds != NULL && l < cf->nlisten; l++)
        if (fds[0][l] >= 0)
            hd_log(HD_LOG_NOTICE, &main_log, 0, "listening on %s%s",
                   cf->listen[l].text, cf->listen[l].ssl ? " ssl" : "");
    for (int l = 0; fds != NULL && l < old->nlisten; l++)
        if (listening(cf, &old->listen[l]) != 2)
            hd_log(HD_LOG_NOTICE, &main_log, 0,
                   "no longer listening on %s%s; its connections finish",
                   old->listen[l].text, old->listen[l].ssl ? " ssl" : "");
    hd_workers_reconf(cf, fds); /* the messages own the sockets now */
    free(fds);
    hd_cycle.conf = cf;
    hd_conf_unref(old);
    hd_log(HD_LOG_NOTICE, &main_log, 0, "configuration reloaded from %s", file);
    return;

refuse_prepared:
    free(fds);
    hd_alert_abandon();
    hd_webhook_abandon();
    SSL_CTX_free(ssl);
refuse_providers:
    hd_providers_drop(pt);
refuse_conf:
    hd_conf_unref(cf);
refuse:
    hd_log(HD_LOG_EMERG, &main_log, 0,
           "%s; reload refused, the old configuration stays", err);
}

static void
close_shards(struct hd_shard **shards, int n)
{
    for (int i = 0; i < n; i++)
        hd_store_close(shards[i]);
    free(shards);
}

static void
close_listeners(int (*fds)[HD_MAX_LISTEN], int nworkers, int nlisten)
{
    for (int w = 0; w < nworkers; w++)
        for (int l = 0; l < nlisten; l++)
            if (fds[w][l] >= 0)
                close(fds[w][l]);
    free(fds);
}

/* Runs the daemon until it is told to stop. cf stays the caller's to free
 * on failure; on success the live configuration is freed here. */
static int
run(struct hd_conf *cf, const char *file)
{
    int(*fds)[HD_MAX_LISTEN];
    struct hd_shard **shards;
    int nworkers, nshards, how = 0;
    char err[1024], *pid_path;
    sigset_t set;

    /* block the signals before anything can bring one: listeners accept
     * early, and threads inherit the mask; only this thread takes them,
     * with sigwait */
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    nworkers = cf->workers ? cf->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (nworkers < 1)
        nworkers = 1;
    if (nworkers > HD_MAX_WORKERS)
        nworkers = HD_MAX_WORKERS;

    if (conf_open_logs(cf) != HD_OK)
        return 1;
    if (hd_store_prepare(cf->store.path, cf->store.shards, nworkers, &nshards,
                         err, sizeof(err)) != HD_OK) {
        fprintf(stderr, "herald: %s\n", err);
        hd_log(HD_LOG_EMERG, &main_log, 0, "%s", err);
        return 1;
    }
    if (hd_sign_init(cf->store.path, err, sizeof(err)) != HD_OK) {
        fprintf(stderr, "herald: %s\n", err);
        return 1;
    }
    fds = hd_calloc(sizeof(*fds) * nworkers);
    if (open_listeners(cf, NULL, nworkers, fds, err, sizeof(err)) != HD_OK) {
        fprintf(stderr, "herald: %s\n", err);
        free(fds);
        return 1;
    }
    if (hd_http_ssl_init(cf, err, sizeof(err)) != HD_OK ||
        hd_webhook_init(cf, err, sizeof(err)) != HD_OK ||
        hd_alert_init(cf, err, sizeof(err)) != HD_OK) {
        fprintf(stderr, "herald: %s\n", err);
        close_listeners(fds, nworkers, cf->nlisten);
        return 1;
    }
    if (hd_providers_create(cf, nworkers, err, sizeof(err)) != HD_OK) {
        fprintf(stderr, "herald: %s\n", err);
        hd_providers_destroy();
        close_listeners(fds, nworkers, cf->nlisten);
        return 1;
    }
    shards = hd_calloc(nshards * sizeof(*shards));
    for (int i = 0; i < nshards; i++) {
        shards[i] = hd_store_open(&cf->store, i, nshards, err, sizeof(err));
        if (shards[i] == NULL) {
            fprintf(stderr, "herald: %s\n", err);
            hd_log(HD_LOG_EMERG, &main_log, 0, "%s", err);
            close_shards(shards, i);
            hd_providers_destroy();
            close_listeners(fds, nworkers, cf->nlisten);
            return 1;
        }
    }

    if (hd_templates_init(cf, shards[0], err, sizeof(err)) != HD_OK) {
        fprintf(stderr, "herald: %s\n", err);
        close_shards(shards, nshards);
        hd_providers_destroy();
        close_listeners(fds, nworkers, cf->nlisten);
        return 1;
    }

    if (cf->daemon && daemonize() != HD_OK) {
        fprintf(stderr, "herald: daemon() failed (%d: %s)\n", errno,
                strerror(errno));
        return 1;
    }
    /* the pid file stays where it was written, whatever a reload says */
    pid_path = hd_strdup(cf->pid);
    if (write_pid(cf->pid) != HD_OK) {
        hd_log(HD_LOG_EMERG, &main_log, errno, "open() \"%s\" failed", cf->pid);
        return 1;
    }

    if (cf->user != NULL && drop_root(cf) != HD_OK)
        return 1;
    signal(SIGPIPE, SIG_IGN);

    hd_cycle.conf = cf;
    hd_cycle.modules = modules;
    hd_cycle.nmodules = (int)HD_NELEMS(modules);
    if (hd_workers_start(cf, nworkers, nshards, shards, fds, cf->nlisten) !=
        HD_OK) {
        hd_log(HD_LOG_EMERG, &main_log, errno, "starting workers failed");
        return 1;
    }
    free(fds);
    hd_log(HD_LOG_NOTICE, &main_log, 0,
           "herald/%s started: %d workers, %d shards, store %s, sync %s",
           HD_VERSION, nworkers, nshards, cf->store.path,
           cf->store.sync ? "on" : "off");

    while (how == 0) {
        int sig;
        if (hd_providers_collect() > 0) {
            /* old provider tables wait for their last deliveries: look
             * again soon to free them */
            struct timespec ts = {0, 100 * 1000 * 1000};
            sig = sigtimedwait(&set, NULL, &ts);
            if (sig < 0)
                continue;
        } else if (sigwait(&set, &sig) != 0) {
            continue;
        }
        switch (sig) {
        case SIGHUP:
            hd_log(HD_LOG_NOTICE, &main_log, 0, "reconfiguring");
            reload(file);
            break;
        case SIGUSR1:
            hd_log(HD_LOG_NOTICE, &main_log, 0, "reopening logs");
            if (hd_log_reopen() != HD_OK || hd_providers_reopen() != HD_OK)
                hd_log(HD_LOG_ERR, &main_log, errno, "reopening logs failed");
            break;
        case SIGQUIT:
            hd_log(HD_LOG_NOTICE, &main_log, 0, "gracefully shutting down");
            how = 1;
            break;
        default:
            hd_log(HD_LOG_NOTICE, &main_log, 0, "exiting");
            how = 2;
            break;
        }
    }

    hd_workers_stop(how);
    {
        /* quit waits for in-flight deliveries; stop only for requests */
        int ms = how == 1 ? 30000 : 5000;
        while (ms > 0 && !hd_workers_idle()) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            int sig;
            nanosleep(&ts, NULL);
            ms -= 10;
            /* a second TERM/INT during a quit makes it a stop */
            {
                struct timespec zero = {0, 0};
                sig = sigtimedwait(&set, NULL, &zero);
                if (sig == SIGTERM || sig == SIGINT)
                    ms = ms > 5000 ? 5000 : ms;
            }
        }
    }
    hd_workers_stop(3);
    hd_workers_join();
    close_shards(shards, nshards);
    hd_providers_destroy();
    hd_templates_free();
    hd_webhook_free();
    hd_alert_free();
    hd_http_ssl_free();
    hd_log(HD_LOG_NOTICE, &main_log, 0, "exit");
    unlink(pid_path);
    free(pid_path);
    hd_conf_unref(hd_cycle.conf); /* cf may be gone: reloads replace it */
    hd_log_close();
    return 0;
}

int
main(int argc, char **argv)
{
    const char *file = "conf/herald.conf", *sig = NULL;
    int test = 0, opt;
    struct hd_conf *cf;
    char err[1024];

    while ((opt = getopt(argc, argv, "hvVtkc:s:g:")) != -1) {
        switch (opt) {
        case 'g': {
            /* herald -g vapid > vapid.pem: a new VAPID key pair for Web
             * Push; the key browsers need goes to stderr */
            char *pem, pub[HD_WEBPUSH_PUBLIC_LEN];
            if (strcmp(optarg, "vapid") != 0) {
                fprintf(stderr, "herald: -g knows only \"vapid\"\n");
                return 1;
            }
            if (hd_webpush_vapid_new(&pem, pub, err, sizeof(err)) != HD_OK) {
                fprintf(stderr, "herald: %s\n", err);
                return 1;
            }
            fputs(pem, stdout);
            fprintf(stderr, "applicationServerKey: %s\n", pub);
            OPENSSL_cleanse(pem, strlen(pem));
            free(pem);
            return 0;
        }
        case 'k': {
            char line[1024], out[160];
            size_t n;
            if (fgets(line, sizeof(line), stdin) == NULL) {
                fprintf(stderr, "herald: -k reads the secret on stdin\n");
                return 1;
            }
            n = strlen(line);
            while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                line[--n] = '\0';
            if (n < 8) {
                fprintf(stderr, "herald: a secret has at least 8 "
                                "characters\n");
                return 1;
            }
            if (hd_secret_hash(line, out, sizeof(out)) != HD_OK) {
                fprintf(stderr, "herald: cannot read /dev/urandom\n");
                return 1;
            }
            printf("%s\n", out);
            return 0;
        }
        case 'h':
            usage();
            return 0;
        case 'v':
            version(0);
            return 0;
        case 'V':
            version(1);
            return 0;
        case 't':
            test = 1;
            break;
        case 'c':
            file = optarg;
            break;
        case 's':
            sig = optarg;
            break;
        default:
            usage();
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "herald: invalid option: \"%s\"\n", argv[optind]);
        return 1;
    }

    cf = hd_conf_load(file, err, sizeof(err));
    if (cf != NULL && (hd_providers_check(cf, err, sizeof(err)) != HD_OK ||
                       hd_templates_check(cf, err, sizeof(err)) != HD_OK)) {
        hd_conf_unref(cf);
        cf = NULL;
    }
    if (cf == NULL) {
        fprintf(stderr, "herald: %s\n", err);
        if (test)
            fprintf(stderr, "herald: configuration file %s test failed\n",
                    file);
        return 1;
    }
    if (test) {
        fprintf(stderr, "herald: the configuration file %s syntax is ok\n",
                file);
        fprintf(stderr, "herald: configuration file %s test is successful\n",
                file);
        hd_conf_unref(cf);
        return 0;
    }
    if (sig != NULL) {
        int rc = signal_daemon(cf, sig);
        hd_conf_unref(cf);
        return rc;
    }
    if (run(cf, file) != 0) {
        hd_conf_unref(cf);
        return 1;
    }
    return 0;
}
