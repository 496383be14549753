/* placeholder until written */
#include "commands.h"
#include "beit/core.h"
int cmd_data(int argc, char **argv) { (void)argc; (void)argv; beit_fatal(BEIT_EXIT_FAILURE, "not built yet"); }
