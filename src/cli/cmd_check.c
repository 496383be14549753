/* beit check: validate a job before it waits in a queue. Every key (type, range, cross-field
 * rules), then the files the job names: that they open, and that their shapes agree with the
 * model. Exits 0 only when the job would start. */
#include "beit/config.h"
#include "beit/log.h"
#include "commands.h"
#include "runopts.h"

int cmd_check(int argc, char **argv) {
    runopts ro;
    if (runopts_parse(&ro, argc, argv, RUNOPT_JOB, NULL,
                      "usage: beit check -c JOB [--set KEY=VALUE]...\n"
                      "\n"
                      "Validates a job file without running it: every key (type, range, the rules between\n"
                      "keys), and the files it names (they open, and their shapes agree with the model).\n"
                      "Exit 0 only when the job would start; 2 for a job-file error, 3 for unreadable data,\n"
                      "5 when data and job disagree."))
        return 0;
    beit_config c;
    runopts_load_config(&ro, &c);
    const char *src = runopts_source(&ro);
    beit_log("job %s: task %s, seed %d", src, config_enum_name("task", c.task), c.seed);
    config_check_files(&c, src);
    beit_log("ok: %s would start", src);
    return 0;
}
