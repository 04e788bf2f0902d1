// posix_spawn with the file actions a server needs: the three standard descriptors set, every
// other descriptor closed in the child (closefrom, not a scan of /proc/self/fd), default signal
// dispositions and an empty signal mask.
#ifndef TENKI_SPAWN_H
#define TENKI_SPAWN_H
#include <sys/types.h>

/// Starts `path` with `argv` and `envp` (both NULL-terminated). `stdio[i]` becomes descriptor i
/// in the child; -1 leaves descriptor i as the parent has it. On success stores the pid and
/// returns 0; otherwise returns an errno value.
int tenki_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[], const int stdio[3]);

/// pipe2(fds, O_CLOEXEC): Swift sees no pipe2 without _GNU_SOURCE.
int tenki_pipe_cloexec(int fds[2]);
#endif
