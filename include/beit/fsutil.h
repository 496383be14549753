/* fsutil.h: files and processes: SHA-256, UUIDs, atomic writes (temporary file + rename),
 * the signal guards of a write in progress and of preemption, mkdir -p, an agreed exit. */
#ifndef BEIT_FSUTIL_H
#define BEIT_FSUTIL_H

#include "beit/error.h"

#include <stddef.h>
#include <stdint.h>

/* SHA-256 of a file as 64 hex chars + NUL; returns 0 on success, -1 if unreadable. */
int beit_sha256_file(const char *path, char out_hex[65]);
void beit_sha256(const void *data, size_t n, uint8_t out[32]);
/* RFC 4122 version-4 UUID string from /dev/urandom (36 chars + NUL). */
void beit_uuid4(char out[37]);
/* Write atomically: callers write to beit_tmp_path(final) and then beit_commit_file(). */
char *beit_tmp_path(const char *final_path); /* "<dir>/.<base>.tmp.<pid>"; free() it */
/* fsync + rename tmp -> final; returns 0 or -1 with errno set */
int beit_commit_file(const char *tmp_path, const char *final_path);
/* While a temporary output is being written, SIGINT, SIGTERM and SIGHUP remove it before the
 * process dies (then the signal takes its default action). One guarded file per process at a
 * time: a signal handler gets no context, so the path is process-wide state (fsutil.c).
 * clear restores the previous handlers. */
void beit_tmp_guard_set(const char *tmp_path);
void beit_tmp_guard_clear(void);
/* Stop requests (preemption; the training loop, train.h). install: SIGUSR1 and SIGTERM only
 * record that they arrived (one volatile sig_atomic_t: async-signal-safe; SA_RESTART), the
 * previous handlers are saved; restore puts them back and forgets the request. While installed,
 * beit_tmp_guard_set leaves these two signals alone, so a stop request during a checkpoint write
 * neither kills the writer nor removes its file. beit_stop_signal: the first such signal since
 * install (SIGUSR1 or SIGTERM), or 0. Process-wide state (fsutil.c): a handler gets no context. */
void beit_stop_signals_install(void);
void beit_stop_signals_restore(void);
int beit_stop_signal(void);
/* End the job cleanly with `code` when EVERY rank calls it (an agreed stop): flush,
 * MPI_Finalize, exit(code). No MPI_Abort: mpirun and srun then report the code itself. */
BEIT_NORETURN void beit_exit_all(int code);
/* mkdir -p; returns 0 or -1 with errno set */
int beit_mkdir_p(const char *path);

#endif
