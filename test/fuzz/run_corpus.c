/*
 * test/fuzz/run_corpus.c - run a libFuzzer target's corpus without
 * libFuzzer: every file in the directories (or the files) named on the
 * command line goes through LLVMFuzzerTestOneInput once, in a buffer of
 * exactly its size.  Built with the normal compiler, so the corpus (the
 * seeds and every crasher found so far) is exercised on every test run.
 * Exits 0, or 1 if no file was found (a corpus that went missing).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return perror(path), -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (!b || (n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n)) {
        fclose(f);
        free(b);
        return perror(path), -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(b, (size_t)n);
    free(b);
    return 0;
}

int main(int argc, char **argv)
{
    long files = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0)
            return perror(argv[i]), 1;
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) < 0)
                return 1;
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d)
            return perror(argv[i]), 1;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            if (run_file(path) < 0)
                return closedir(d), 1;
            files++;
        }
        closedir(d);
    }
    printf("%ld corpus files ran\n", files);
    return files > 0 ? 0 : 1;
}
