#define _GNU_SOURCE 1
#include "tenki_spawn.h"
#include <signal.h>
#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

int tenki_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[], const int stdio[3]) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int status = posix_spawn_file_actions_init(&actions);
    if (status != 0) return status;
    status = posix_spawnattr_init(&attributes);
    if (status != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return status;
    }
    for (int target = 0; target < 3 && status == 0; target++) {
        if (stdio[target] >= 0) status = posix_spawn_file_actions_adddup2(&actions, stdio[target], target);
    }
    if (status == 0) status = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if (status == 0) status = posix_spawnattr_setsigmask(&attributes, &none);
    if (status == 0) status = posix_spawnattr_setsigdefault(&attributes, &all);
    if (status == 0) status = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (status == 0) status = posix_spawn(pid, path, &actions, &attributes, argv, envp);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return status;
}

int tenki_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
