/*
 * benchkit: the workloads and the instruments of scripts/bench.sh, one small
 * subcommand each. Workloads run as the main child of an init inside a PID
 * namespace (so nothing they start outlives the run); instruments run outside.
 *
 *   spawntime ROUNDS WARMUP LABEL CMD... [:: LABEL CMD...]...
 *       run every command once per round, in a shuffled order, and print
 *       "LABEL<TAB>ROUND<TAB>NANOSECONDS" for each run after the warm-up rounds.
 *   tree N        become a MetaMCP-shaped tree of N processes (this one included):
 *                 (N-1)/3 process groups "npm exec" -> "sh -c" -> "node", idle.
 *   orphans N     make N orphans of the init (blocked on a pipe), release them
 *                 together, print "reap_ns NANOSECONDS" once only the init and this
 *                 process remain (and "spawn_ns", the time making them took).
 *   burst BASE N [ignore-term]
 *                 hold BASE idle processes, then after 1.5-2.5 s (a random phase)
 *                 fork N more at once,
 *                 each its own process group; reap them; exit 2.5 s later.
 *   storm SECONDS CEILING
 *                 fork idle processes (own process group each) as fast as possible
 *                 for SECONDS, never holding more than CEILING; then exit.
 *   churn SECONDS RATE BURST_EVERY_S BURST_N
 *                 the soak's workload: one fork action every 1/RATE s for SECONDS,
 *                 by a fixed rota: 1 in 20 an orphan (a parent that forks a leaf
 *                 and exits; half the leaves idle until the init ends them, half
 *                 exit 300 ms later), 1 in 100 a MetaMCP-shaped launcher tree
 *                 "npm exec @bench/soak-K" (K of 4 keys, so they duplicate), the
 *                 rest short-lived children (exit at once; 1 in 10 execs
 *                 /bin/true); every BURST_EVERY_S s BURST_N processes at once
 *                 (each its own process group, exiting 10 s later) to push over
 *                 the init's cap.
 *                 Prints what it made ("forks", "orphans", "launchers", ...) and
 *                 "elapsed_ns".
 *   procfloor N ROUNDS
 *                 the floor of any /proc scanner: with N idle children, list /proc
 *                 and read every PID/stat (openat, read, close) ROUNDS times; print
 *                 "floor_ns" (median per scan). Run as PID 1 of a namespace.
 *   halt stop|freeze TRIALS [CGROUP]
 *                 how fast a brake halts a forker: a child forks (and reaps) as fast
 *                 as it can; 50 ms in, it is stopped, by SIGSTOP or by freezing the
 *                 cgroup CGROUP (a v1 freezer or a v2 cgroup dir) it was moved into
 *                 first; waits until the kernel says it is halted (state T, FROZEN,
 *                 "frozen 1"). Prints the medians and maxima of "halt_us" (request to
 *                 halted) and "leaked" (forks completed after the request).
 *   count PROCDIR CAP INTERVAL_US DURATION_MS [TIMELINE]
 *                 sample the number of processes under PROCDIR (the namespace's
 *                 /proc seen from outside; the init itself not counted) and print
 *                 "peak N", "over_ns T" (first sample above CAP) and "under_ns T"
 *                 (first sample back at or below CAP after that, from over_ns).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void die(const char *what)
{
    perror(what);
    exit(111);
}

static void idle_forever(void)
{
    for (;;)
        pause();
}

/* Reap children as they die, forever (the main child of tree). */
static void reap_forever(void)
{
    for (;;) {
        if (wait(NULL) < 0 && errno == ECHILD)
            pause();
    }
}

/* Reap whatever has exited; return how many. */
static int reap_some(void)
{
    int n = 0;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        n++;
    return n;
}

/* ---- spawntime ---------------------------------------------------------- */

struct command {
    const char *label;
    char **argv;
};

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int spawntime(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    int rounds = atoi(argv[0]), warmup = atoi(argv[1]);
    struct command cmds[16];
    int n = 0;
    for (int i = 2; i < argc && n < 16;) {
        cmds[n].label = argv[i++];
        cmds[n].argv = &argv[i];
        while (i < argc && strcmp(argv[i], "::") != 0)
            i++;
        if (i < argc)
            argv[i++] = NULL; /* terminates this command's argv */
        n++;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int order[16];
    for (int r = 0; r < warmup + rounds; r++) {
        for (int i = 0; i < n; i++)
            order[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = (int)(next_random() % (uint64_t)(i + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int k = 0; k < n; k++) {
            struct command *c = &cmds[order[k]];
            pid_t pid;
            int status;
            uint64_t t0 = now_ns();
            if (posix_spawn(&pid, c->argv[0], &fa, NULL, c->argv, environ) != 0)
                die(c->argv[0]);
            if (waitpid(pid, &status, 0) != pid)
                die("waitpid");
            uint64_t t1 = now_ns();
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "benchkit: %s failed (status %d)\n", c->label, status);
                return 1;
            }
            if (r >= warmup)
                printf("%s\t%d\t%llu\n", c->label, r - warmup, (unsigned long long)(t1 - t0));
        }
    }
    return 0;
}

/* ---- tree --------------------------------------------------------------- */

/* Replace this process image with an idle copy of benchkit titled `title`, the
 * way npm's process title shows in /proc/PID/cmdline. */
static void exec_idle(const char *title)
{
    char *argv[] = {(char *)title, NULL};
    setenv("BENCHKIT_IDLE", "1", 1);
    execve("/proc/self/exe", argv, environ);
    die("execve");
}

static int tree(int argc, char **argv)
{
    if (argc < 1)
        return 2;
    int units = (atoi(argv[0]) - 1) / 3;
    char title[128];
    for (int k = 0; k < units; k++) {
        pid_t top = fork();
        if (top < 0)
            die("fork");
        if (top > 0)
            continue;
        setpgid(0, 0); /* MetaMCP spawns each server detached */
        pid_t sh = fork();
        if (sh == 0) {
            pid_t node = fork();
            if (node == 0) {
                snprintf(title, sizeof title, "node /app/node_modules/.bin/bench-server-%d", k);
                exec_idle(title);
            }
            snprintf(title, sizeof title, "sh -c bench-server-%d", k);
            exec_idle(title);
        }
        snprintf(title, sizeof title, "npm exec @bench/server-%d", k);
        exec_idle(title);
    }
    reap_forever();
    return 0;
}

/* ---- orphans ------------------------------------------------------------ */

/* Processes in this PID namespace, from its /proc (zombies included). */
static int count_procs(const char *procdir)
{
    DIR *d = opendir(procdir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9')
            n++;
    closedir(d);
    return n;
}

static int orphans(int argc, char **argv)
{
    if (argc < 1)
        return 2;
    int n = atoi(argv[0]);
    int gate[2];
    if (pipe(gate) != 0)
        die("pipe");
    uint64_t spawn0 = now_ns();
    for (int i = 0; i < n; i++) {
        pid_t mid = fork();
        if (mid < 0)
            die("fork");
        if (mid == 0) {
            pid_t leaf = fork();
            if (leaf == 0) {
                char byte;
                close(gate[1]);
                while (read(gate[0], &byte, 1) < 0 && errno == EINTR)
                    ;
                _exit(0); /* the gate opened: exit, a zombie for the init */
            }
            _exit(leaf < 0);
        }
        if (waitpid(mid, NULL, 0) != mid)
            die("waitpid");
    }
    /* Every leaf's parent is reaped, so every leaf is the init's now. */
    close(gate[0]);
    int before = count_procs("/proc");
    uint64_t t0 = now_ns(), spawn_ns = t0 - spawn0;
    close(gate[1]);
    int left;
    while ((left = count_procs("/proc")) > 2)
        sleep_ns(1000000);
    uint64_t t1 = now_ns();
    printf("reap_ns %llu\nspawn_ns %llu\nprocs_before %d\n", (unsigned long long)(t1 - t0),
           (unsigned long long)spawn_ns, before);
    fflush(stdout);
    return left == 2 ? 0 : 1;
}

/* ---- burst and storm ---------------------------------------------------- */

static pid_t fork_idle(int ignore_term)
{
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        if (ignore_term)
            signal(SIGTERM, SIG_IGN);
        idle_forever();
    }
    return pid;
}

static int burst(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int base = atoi(argv[0]), n = atoi(argv[1]);
    int ignore_term = argc > 2 && strcmp(argv[2], "ignore-term") == 0;
    for (int i = 0; i < base; i++)
        if (fork_idle(0) < 0)
            die("fork");
    /* A random phase, so that the burst does not always land at the same point of
     * the init's timers (which start with it, as this process does). */
    sleep_ns(1500000000u + now_ns() % 1000000000u);
    for (int i = 0; i < n; i++)
        if (fork_idle(ignore_term) < 0)
            die("fork");
    uint64_t end = now_ns() + 2500000000u;
    while (now_ns() < end) {
        reap_some();
        sleep_ns(200000);
    }
    return 0;
}

static int storm(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    uint64_t end = now_ns() + (uint64_t)(atof(argv[0]) * 1e9);
    int ceiling = atoi(argv[1]), live = 0;
    long forked = 0;
    while (now_ns() < end) {
        live -= reap_some();
        if (live >= ceiling) {
            sleep_ns(1000000);
            continue;
        }
        pid_t pid = fork_idle(0);
        if (pid > 0) {
            live++;
            forked++;
        } else {
            sleep_ns(1000000); /* EAGAIN: let the kernel breathe */
        }
    }
    printf("forked %ld\n", forked);
    fflush(stdout);
    return 0;
}

/* ---- halt (the storm brake's mechanisms) -------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n < 0 ? -1 : 0;
}

/* Whether `path` holds `needle`. */
static int file_has(const char *path, const char *needle)
{
    char buf[4096];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

static int halted(pid_t pid, const char *cg, int v1)
{
    char path[512];
    if (!cg) {
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        return file_has(path, ") T ");
    }
    snprintf(path, sizeof path, "%s/%s", cg, v1 ? "freezer.state" : "cgroup.events");
    return file_has(path, v1 ? "FROZEN" : "frozen 1");
}

static int halt(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int freeze = strcmp(argv[0], "freeze") == 0, trials = atoi(argv[1]);
    const char *cg = freeze && argc > 2 ? argv[2] : NULL;
    if ((freeze && !cg) || trials < 1 || trials > 1000)
        return 2;
    char probe[512];
    snprintf(probe, sizeof probe, "%s/freezer.state", cg ? cg : ".");
    int v1 = cg && access(probe, F_OK) == 0;
    volatile long *forks = mmap(NULL, sizeof(long), PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (forks == MAP_FAILED)
        die("mmap");
    uint64_t *lat = calloc(trials, sizeof *lat), *leak = calloc(trials, sizeof *leak);
    if (!lat || !leak)
        die("calloc");
    for (int t = 0; t < trials; t++) {
        int gate[2];
        if (pipe(gate) != 0)
            die("pipe");
        *forks = 0;
        pid_t forker = fork();
        if (forker < 0)
            die("fork");
        if (forker == 0) {
            char byte;
            close(gate[1]);
            if (read(gate[0], &byte, 1) != 1)
                _exit(1);
            signal(SIGCHLD, SIG_IGN); /* the kernel reaps: no zombies pile up */
            for (;;) {
                pid_t pid = fork();
                if (pid == 0)
                    _exit(0);
                if (pid > 0)
                    (*forks)++;
            }
        }
        close(gate[0]);
        char pid_text[32];
        snprintf(pid_text, sizeof pid_text, "%d\n", forker);
        if (cg && write_file(cg, "cgroup.procs", pid_text) != 0)
            die("cgroup.procs");
        if (write(gate[1], "x", 1) != 1)
            die("gate");
        close(gate[1]);
        sleep_ns(50000000u);
        uint64_t t0 = now_ns();
        long c0 = *forks;
        if (!cg)
            kill(forker, SIGSTOP);
        else if (write_file(cg, v1 ? "freezer.state" : "cgroup.freeze", v1 ? "FROZEN" : "1") != 0)
            die("freeze");
        while (!halted(forker, cg, v1) && now_ns() - t0 < 1000000000u)
            ;
        uint64_t t1 = now_ns();
        sleep_ns(20000000u);
        lat[t] = (t1 - t0) / 1000;
        leak[t] = (uint64_t)(*forks - c0);
        if (!cg)
            kill(forker, SIGKILL);
        else {
            write_file(cg, v1 ? "freezer.state" : "cgroup.freeze", v1 ? "THAWED" : "0");
            kill(forker, SIGKILL);
        }
        waitpid(forker, NULL, 0);
        sleep_ns(20000000u); /* its last children go too */
    }
    qsort(lat, trials, sizeof *lat, cmp_u64);
    qsort(leak, trials, sizeof *leak, cmp_u64);
    printf("trials %d\nhalt_us %llu\nhalt_us_max %llu\nleaked %llu\nleaked_max %llu\n", trials,
           (unsigned long long)lat[trials / 2], (unsigned long long)lat[trials - 1],
           (unsigned long long)leak[trials / 2], (unsigned long long)leak[trials - 1]);
    return 0;
}

/* ---- churn (the soak) --------------------------------------------------- */

static int churn(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    double seconds = atof(argv[0]), rate = atof(argv[1]);
    double burst_every = atof(argv[2]);
    int burst_n = atoi(argv[3]);
    if (seconds <= 0 || rate <= 0 || burst_every <= 0 || burst_n < 0)
        return 2;
    uint64_t period = (uint64_t)(1e9 / rate), t0 = now_ns();
    uint64_t end = t0 + (uint64_t)(seconds * 1e9);
    uint64_t next = t0, next_burst = t0 + (uint64_t)(burst_every * 1e9);
    long forks = 0, failed = 0, orphans = 0, launchers = 0, shortlived = 0, bursts = 0;
    long late = 0, i;
    char title[128];
    for (i = 0; now_ns() < end; i++) {
        reap_some();
        uint64_t now = now_ns();
        if (now < next)
            sleep_ns(next - now);
        else if (now - next > 100000000u) {
            late++; /* more than 100 ms behind: drop the backlog, do not flood */
            next = now;
        }
        next += period;
        if (now_ns() >= next_burst) {
            for (int k = 0; k < burst_n; k++) {
                /* Each its own group, gone after 10 s if the cap has not ended it,
                 * so the population falls back between bursts. */
                pid_t pid = fork();
                if (pid == 0) {
                    setpgid(0, 0);
                    sleep_ns(10000000000u);
                    _exit(0);
                }
                if (pid > 0)
                    forks++;
                else
                    failed++;
            }
            bursts++;
            next_burst += (uint64_t)(burst_every * 1e9);
        }
        if (i % 100 == 50) {
            /* A launcher tree, as MetaMCP leaks them: npm exec -> sh -c -> node. */
            long key = launchers % 4;
            pid_t top = fork();
            if (top == 0) {
                setpgid(0, 0);
                pid_t sh = fork();
                if (sh == 0) {
                    if (fork() == 0) {
                        snprintf(title, sizeof title, "node /app/node_modules/.bin/soak-%ld", key);
                        exec_idle(title);
                    }
                    snprintf(title, sizeof title, "sh -c soak-%ld", key);
                    exec_idle(title);
                }
                snprintf(title, sizeof title, "npm exec @bench/soak-%ld", key);
                exec_idle(title);
            }
            if (top > 0) {
                forks += 3;
                launchers++;
            } else {
                failed++;
            }
        } else if (i % 20 == 0) {
            /* An orphan: its parent exits at once, the leaf becomes the init's. */
            int idle = (orphans % 2) == 0;
            pid_t mid = fork();
            if (mid == 0) {
                pid_t leaf = fork();
                if (leaf == 0) {
                    if (idle)
                        exec_idle("soak-orphan");
                    sleep_ns(300000000u);
                    _exit(0);
                }
                _exit(leaf < 0);
            }
            if (mid > 0) {
                forks += 2;
                orphans++;
            } else {
                failed++;
            }
        } else {
            pid_t pid = fork();
            if (pid == 0) {
                if (i % 10 == 1) {
                    execl("/bin/true", "true", (char *)NULL);
                }
                _exit(0);
            }
            if (pid > 0) {
                forks++;
                shortlived++;
            } else {
                failed++;
            }
        }
    }
    uint64_t elapsed = now_ns() - t0;
    printf("actions %ld\nforks %ld\nfailed %ld\norphans %ld\nlaunchers %ld\nshortlived %ld\n"
           "bursts %ld\nburst_n %d\nlate %ld\nelapsed_ns %llu\n",
           i, forks, failed, orphans, launchers, shortlived, bursts, burst_n, late,
           (unsigned long long)elapsed);
    fflush(stdout);
    return 0;
}

/* ---- procfloor --------------------------------------------------------- */

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int procfloor(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int n = atoi(argv[0]), rounds = atoi(argv[1]);
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0)
            idle_forever();
    }
    int proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    uint64_t *times = calloc((size_t)rounds, sizeof *times);
    if (proc < 0 || !times)
        die("procfloor");
    char path[300], buf[1024];
    for (int r = 0; r < rounds; r++) {
        uint64_t t0 = now_ns();
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (e->d_name[0] < '1' || e->d_name[0] > '9')
                continue;
            snprintf(path, sizeof path, "%s/stat", e->d_name);
            int fd = openat(proc, path, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                if (read(fd, buf, sizeof buf) < 0)
                    perror("read");
                close(fd);
            }
        }
        if (d)
            closedir(d);
        times[r] = now_ns() - t0;
    }
    qsort(times, (size_t)rounds, sizeof *times, compare_u64);
    printf("floor_ns %llu\n", (unsigned long long)times[rounds / 2]);
    fflush(stdout);
    return 0; /* as PID 1 of its namespace, its exit ends the children */
}

/* ---- count -------------------------------------------------------------- */

static int count(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    const char *procdir = argv[0];
    int cap = atoi(argv[1]);
    uint64_t interval = (uint64_t)atol(argv[2]) * 1000u;
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)atol(argv[3]) * 1000000u;
    FILE *timeline = argc > 4 ? fopen(argv[4], "w") : NULL;
    int peak = -1;
    uint64_t over = 0, under = 0;
    for (uint64_t t = t0; t < end; t = now_ns()) {
        int n = count_procs(procdir);
        if (n < 0)
            break; /* the init is gone */
        n -= 1;    /* the init itself */
        if (n > peak)
            peak = n;
        if (timeline)
            fprintf(timeline, "%.3f\t%d\n", (double)(t - t0) / 1e6, n);
        if (cap > 0 && n > cap && over == 0)
            over = t;
        if (cap > 0 && n <= cap && over != 0 && under == 0)
            under = t;
        sleep_ns(interval);
    }
    if (timeline)
        fclose(timeline);
    printf("peak %d\n", peak);
    if (over)
        printf("over_ns %llu\n", (unsigned long long)(over - t0));
    if (under)
        printf("under_ns %llu\n", (unsigned long long)(under - over));
    return 0;
}

int main(int argc, char **argv)
{
    if (getenv("BENCHKIT_IDLE"))
        idle_forever();
    if (argc < 2) {
        fprintf(stderr, "usage: benchkit spawntime|tree|orphans|burst|storm|halt|churn|procfloor|count ARGS...\n");
        return 2;
    }
    /* A workload must never outlive its namespace; an instrument never its caller. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const char *cmd = argv[1];
    argc -= 2;
    argv += 2;
    if (strcmp(cmd, "spawntime") == 0)
        return spawntime(argc, argv);
    if (strcmp(cmd, "tree") == 0)
        return tree(argc, argv);
    if (strcmp(cmd, "orphans") == 0)
        return orphans(argc, argv);
    if (strcmp(cmd, "burst") == 0)
        return burst(argc, argv);
    if (strcmp(cmd, "storm") == 0)
        return storm(argc, argv);
    if (strcmp(cmd, "halt") == 0)
        return halt(argc, argv);
    if (strcmp(cmd, "churn") == 0)
        return churn(argc, argv);
    if (strcmp(cmd, "procfloor") == 0)
        return procfloor(argc, argv);
    if (strcmp(cmd, "count") == 0)
        return count(argc, argv);
    fprintf(stderr, "benchkit: unknown subcommand %s\n", cmd);
    return 2;
}
