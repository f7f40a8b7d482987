/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hooks.c — runs operator hooks as child processes on the event loop, with a timeout each. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "hooks.h"
#include "log.h"

extern char **environ;

struct HookRun {
        sd_event *event;
        HookEnvironment env;
        char *phase, *result;
        char *dir;
        char **names;
        size_t n_names, next;
        uint64_t timeout_usec;
        HooksDone done;
        void *userdata;

        pid_t pid;
        int out_fd;
        sd_event_source *child_source, *timer_source, *defer_source;
        bool timed_out;
};

static void free_names(HookRun *run) {
        for (size_t i = 0; i < run->n_names; i++)
                free(run->names[i]);
        free(run->names);
        run->names = NULL;
        run->n_names = 0;
}

HookRun *hook_run_free(HookRun *run) {
        if (!run)
                return NULL;
        if (run->pid > 0) {
                (void) kill(run->pid, SIGKILL);
                (void) waitpid(run->pid, NULL, 0);
        }
        sd_event_source_disable_unref(run->child_source);
        sd_event_source_disable_unref(run->timer_source);
        sd_event_source_disable_unref(run->defer_source);
        closep(&run->out_fd);
        free_names(run);
        free(run->phase);
        free(run->result);
        free(run->dir);
        sd_event_unref(run->event);
        free(run);
        return NULL;
}

static void finish(HookRun *run, int result, const char *hook, const char *reason) {
        HooksDone done = run->done;

        run->done = NULL;
        if (done)
                done(run, result, hook, reason, run->userdata);
}

/* Root-owned and writable only by root, or we do not trust it. */
static bool trusted(const struct stat *st) {
        return st->st_uid == 0 && !(st->st_mode & (S_IWGRP | S_IWOTH));
}

static int run_next(HookRun *run);

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        HookRun *run = userdata;

        run->timed_out = true;
        if (run->pid > 0)
                (void) kill(run->pid, SIGKILL);
        return 0;
}

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        HookRun *run = userdata;
        const char *name = run->names[run->next - 1];
        char out[512] = "";
        ssize_t n;
        int status = si->si_code == CLD_EXITED ? si->si_status : 128 + si->si_status;

        run->pid = 0;
        run->child_source = sd_event_source_disable_unref(run->child_source);
        run->timer_source = sd_event_source_disable_unref(run->timer_source);
        /* The first line of what the hook printed is its reason. */
        n = read(run->out_fd, out, sizeof(out) - 1);
        if (n > 0) {
                out[n] = 0;
                out[strcspn(out, "\n")] = 0;
        }
        closep(&run->out_fd);
        run->out_fd = -1;

        if (run->timed_out) {
                log_warning("Hook %s/%s (%s) timed out and was killed.", run->dir, name, run->phase);
                finish(run, 124, name, "timed out");
                return 0;
        }
        if (status != 0) {
                log_notice("Hook %s/%s (%s) exited with %d%s%s.", run->dir, name, run->phase, status,
                           out[0] ? ": " : "", out);
                if (streq(run->phase, "pre-drain")) {
                        finish(run, status, name, out[0] ? out : "no reason given");
                        return 0;
                }
        } else
                log_debug("Hook %s/%s (%s) succeeded.", run->dir, name, run->phase);
        if (run_next(run) < 0)
                finish(run, -EIO, name, "could not run the next hook");
        return 0;
}

static int spawn(HookRun *run, int dfd, const char *name) {
        char node[32], job[32], phase[64], *result = NULL, path[PATH_MAX];
        char *argv[2], **envp = NULL;
        size_t n_env = 0;
        int pipefd[2];
        sigset_t all;
        pid_t pid;
        int r;

        if ((size_t) snprintf(path, sizeof(path), "%s/%s", run->dir, name) >= sizeof(path))
                return -ENAMETOOLONG;
        (void) snprintf(node, sizeof(node), "HOTPLUGD_NODE=%d", run->env.node);
        (void) snprintf(job, sizeof(job), "HOTPLUGD_JOB=%u", run->env.job_id);
        (void) snprintf(phase, sizeof(phase), "HOTPLUGD_PHASE=%s", run->phase);
        if (run->result && asprintf(&result, "HOTPLUGD_RESULT=%s", run->result) < 0)
                return -ENOMEM;

        /* Everything the child needs is prepared before fork(): after it, only exec. */
        for (char **e = environ; *e; e++)
                n_env++;
        envp = calloc(n_env + 5, sizeof(char *));
        if (!envp) {
                free(result);
                return -ENOMEM;
        }
        n_env = 0;
        for (char **e = environ; *e; e++)
                if (!startswith(*e, "HOTPLUGD_"))
                        envp[n_env++] = *e;
        envp[n_env++] = node;
        envp[n_env++] = job;
        envp[n_env++] = phase;
        if (result)
                envp[n_env++] = result;
        argv[0] = path;
        argv[1] = NULL;

        if (pipe2(pipefd, O_CLOEXEC) < 0) {
                r = negative_errno();
                goto out;
        }
        pid = fork();
        if (pid < 0) {
                r = negative_errno();
                close(pipefd[0]);
                close(pipefd[1]);
                goto out;
        }
        if (pid == 0) {
                /* The daemon blocks the signals sd-event handles; a hook gets a clean mask. */
                sigemptyset(&all);
                (void) sigprocmask(SIG_SETMASK, &all, NULL);
                (void) dup2(pipefd[1], STDOUT_FILENO);
                (void) setsid();
                execve(path, argv, envp);
                _exit(127);
        }
        close(pipefd[1]);
        run->out_fd = pipefd[0];
        run->pid = pid;
        r = sd_event_add_child(run->event, &run->child_source, pid, WEXITED, on_child, run);
        if (r < 0)
                goto out;
        if (run->timeout_usec > 0) {
                r = sd_event_add_time_relative(run->event, &run->timer_source, CLOCK_MONOTONIC, run->timeout_usec, 0,
                                               on_timeout, run);
                if (r < 0)
                        goto out;
        }
        log_info("Running hook %s (%s, node %d, job %u).", path, run->phase, run->env.node, run->env.job_id);
        r = 0;
out:
        (void) dfd;
        free(result);
        free(envp);
        return r;
}

static int run_next(HookRun *run) {
        _cleanup_close_ int dfd = -1;

        if (run->next >= run->n_names) {
                finish(run, 0, NULL, NULL);
                return 0;
        }
        dfd = open(run->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return negative_errno();
        const char *name = run->names[run->next++];
        struct stat st;

        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return run_next(run); /* removed meanwhile */
        if (!S_ISREG(st.st_mode) || !(st.st_mode & S_IXUSR))
                return run_next(run); /* not a hook: READMEs, disabled (non-executable) hooks */
        if (!trusted(&st)) {
                log_error("Refusing to run hook %s/%s: it must be owned by root and not writable by group or others.",
                          run->dir, name);
                finish(run, -EPERM, name, "not owned by root, or writable by group or others");
                return 0;
        }
        return spawn(run, dfd, name);
}

static int compare_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int on_start(sd_event_source *s, void *userdata) {
        HookRun *run = userdata;
        int r;

        run->defer_source = sd_event_source_disable_unref(run->defer_source);
        r = run_next(run);
        if (r < 0)
                finish(run, r, NULL, strerror(-r));
        return 0;
}

int hooks_run(sd_event *event, const char *root, const HookEnvironment *env, uint64_t timeout_usec,
              HooksDone done, void *userdata, HookRun **ret) {
        _cleanup_(hook_run_freep) HookRun *run = NULL;
        struct stat st;
        DIR *d;
        struct dirent *de;
        int r;

        run = calloc(1, sizeof(HookRun));
        if (!run)
                return -ENOMEM;
        run->event = sd_event_ref(event);
        run->env = *env;
        run->out_fd = -1;
        run->phase = strdup(env->phase);
        run->result = env->result ? strdup(env->result) : NULL;
        if (!run->phase || (env->result && !run->result))
                return -ENOMEM;
        run->env.phase = run->phase;
        run->env.result = run->result;
        run->timeout_usec = timeout_usec;
        run->done = done;
        run->userdata = userdata;
        if (asprintf(&run->dir, "%s/etc/hotplugd/hooks.d", streq(root, "/") ? "" : root) < 0)
                return -ENOMEM;

        d = opendir(run->dir);
        if (d) {
                if (fstat(dirfd(d), &st) < 0 || !trusted(&st)) {
                        closedir(d);
                        log_error("Refusing to run hooks from %s: it must be owned by root and not writable by group or others.",
                                  run->dir);
                        return -EPERM;
                }
                while ((de = readdir(d))) {
                        char **p;

                        if (de->d_name[0] == '.')
                                continue;
                        p = realloc(run->names, (run->n_names + 1) * sizeof(char *));
                        if (!p) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        run->names = p;
                        run->names[run->n_names] = strdup(de->d_name);
                        if (!run->names[run->n_names]) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        run->n_names++;
                }
                closedir(d);
                qsort(run->names, run->n_names, sizeof(char *), compare_names);
        } else if (errno != ENOENT)
                return negative_errno();

        r = sd_event_add_defer(event, &run->defer_source, on_start, run);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(run);
        return 0;
}
