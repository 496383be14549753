/* beit config: the job-file reference (every key, type, default, range, meaning), and the
 * resolved form of a job file. */
#include "beit/config.h"
#include "beit/log.h"
#include "commands.h"
#include "runopts.h"

#include <stdio.h>
#include <stdlib.h>

int cmd_config(int argc, char **argv) {
    runopts ro;
    const char *keys = NULL;
    const extra_flag extra[] = {
        {"--keys", NULL, "print every job-file key: type, default, range or choices, meaning", &keys},
        {NULL, NULL, NULL, NULL},
    };
    if (runopts_parse(&ro, argc, argv, RUNOPT_JOB, extra,
                      "usage: beit config --keys\n"
                      "       beit config -c JOB [--set KEY=VALUE]...\n"
                      "\n"
                      "The first form lists every job-file key. The second prints the job resolved:\n"
                      "every key, defaults applied, overrides included, as the run will store it.\n"
                      "Job files are strict YAML: unknown or duplicate keys, wrong types and values out\n"
                      "of range are errors that name the file, line and column.")) {
        if (beit_rank() == 0) {
            printf("\njob-file keys:\n");
            config_print_help(stdout);
        }
        return 0;
    }
    if (keys || !ro.config) {
        if (beit_rank() == 0) config_print_help(stdout);
        return 0;
    }
    beit_config c;
    runopts_load_config(&ro, &c);
    char *y = config_to_yaml(&c);
    if (beit_rank() == 0) fputs(y, stdout);
    free(y);
    return 0;
}
