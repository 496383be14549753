/* One function per subcommand: parse its flags, load the config, call the library, return an
 * exit code (include/beit/error.h). main() has initialised MPI and the rank info. */
#ifndef BEIT_CLI_COMMANDS_H
#define BEIT_CLI_COMMANDS_H

int cmd_data(int argc, char **argv);   /* beit data import|info */
int cmd_check(int argc, char **argv);  /* beit check -c JOB */
int cmd_config(int argc, char **argv); /* beit config --help | defaults */
int cmd_dvae(int argc, char **argv);   /* beit dvae train */
int cmd_pretrain(int argc, char **argv); /* beit pretrain */
int cmd_tokenize(int argc, char **argv);
int cmd_finetune(int argc, char **argv); /* beit finetune */
int cmd_probe(int argc, char **argv);    /* beit probe */
int cmd_eval(int argc, char **argv);     /* beit eval */
int cmd_attn(int argc, char **argv);     /* beit attn */
int cmd_bench(int argc, char **argv);    /* beit bench (tools/bench) */

#endif
