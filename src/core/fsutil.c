/* Files: atomic commit (write to a temporary name, fsync, rename) and mkdir -p. */
#define _POSIX_C_SOURCE 200809L
#include "beit/error.h"
#include "beit/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *beit_tmp_path(const char *final_path) {
    char *a = xstrdup(final_path), *b = xstrdup(final_path);
    char *dir = dirname(a), *base = basename(b);
    char *tmp = xasprintf("%s/.%s.tmp.%ld", dir, base, (long)getpid());
    free(a);
    free(b);
    return tmp;
}

static int fsync_path(const char *path, int flags) {
    int fd = open(path, flags);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int beit_commit_file(const char *tmp_path, const char *final_path) {
    if (fsync_path(tmp_path, O_RDONLY) != 0) return -1;
    if (rename(tmp_path, final_path) != 0) return -1;
    /* make the rename itself durable */
    char *a = xstrdup(final_path);
    int rc = fsync_path(dirname(a), O_RDONLY | O_DIRECTORY);
    free(a);
    (void)rc; /* some filesystems refuse fsync on directories; the rename already happened */
    return 0;
}

int beit_mkdir_p(const char *path) {
    char *p = xstrdup(path);
    size_t n = strlen(p);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == '\0') {
            char c = p[i];
            p[i] = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                int e = errno;
                free(p);
                errno = e;
                return -1;
            }
            p[i] = c;
        }
    }
    free(p);
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) { errno = ENOTDIR; return -1; }
    return 0;
}

void beit_uuid4(char out[37]) {
    uint8_t b[16];
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(b, 1, 16, f) != 16) beit_fatal(BEIT_EXIT_FAILURE, "cannot read /dev/urandom");
    fclose(f);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* ---- stop requests (SIGUSR1, SIGTERM while training) ---- */
static const int STOP_SIGNALS[2] = {SIGUSR1, SIGTERM};
static volatile sig_atomic_t g_stop_sig;
static volatile sig_atomic_t g_stop_active; /* handlers installed */
static struct sigaction g_stop_old[2];

static void stop_on_signal(int sig) {
    if (!g_stop_sig) g_stop_sig = sig; /* the first one counts; nothing else is safe here */
}

static int stop_owns(int sig) {
    if (!g_stop_active) return 0;
    for (int i = 0; i < 2; i++)
        if (STOP_SIGNALS[i] == sig) return 1;
    return 0;
}

void beit_stop_signals_install(void) {
    if (g_stop_active) return;
    g_stop_sig = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stop_on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 2; i++) sigaction(STOP_SIGNALS[i], &sa, &g_stop_old[i]);
    g_stop_active = 1;
}

void beit_stop_signals_restore(void) {
    if (!g_stop_active) return;
    for (int i = 0; i < 2; i++) sigaction(STOP_SIGNALS[i], &g_stop_old[i], NULL);
    g_stop_active = 0;
    g_stop_sig = 0;
}

int beit_stop_signal(void) { return (int)g_stop_sig; }

/* ---- the temporary-file guard ---- */
static char g_guard_tmp[4096];
static struct sigaction g_guard_old[3];
static int g_guard_set[3]; /* which of the signals the guard took over */
static const int GUARD_SIGNALS[3] = {SIGINT, SIGTERM, SIGHUP};

static void guard_on_signal(int sig) {
    if (g_guard_tmp[0]) unlink(g_guard_tmp); /* async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

void beit_tmp_guard_set(const char *tmp_path) {
    snprintf(g_guard_tmp, sizeof g_guard_tmp, "%s", tmp_path);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = guard_on_signal;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++) {
        /* a stop request (preemption) is handled by the training loop after the write */
        g_guard_set[i] = !stop_owns(GUARD_SIGNALS[i]);
        if (g_guard_set[i]) sigaction(GUARD_SIGNALS[i], &sa, &g_guard_old[i]);
    }
}

void beit_tmp_guard_clear(void) {
    if (!g_guard_tmp[0]) return;
    for (int i = 0; i < 3; i++)
        if (g_guard_set[i]) sigaction(GUARD_SIGNALS[i], &g_guard_old[i], NULL);
    g_guard_tmp[0] = '\0';
}
