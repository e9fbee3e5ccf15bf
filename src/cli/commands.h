/* Entry points of the subcommands; each returns the process exit status. */
#ifndef AGENTNET_CLI_COMMANDS_H
#define AGENTNET_CLI_COMMANDS_H

/*
 * In libagentnet-commands.so, which main reaches through
 * cli_run_module_command (command_module.c). The module's exports are
 * listed in commands_module.map.
 */
int cli_serve(int argc, char **argv);
int cli_cache(int argc, char **argv);
int cli_embed(int argc, char **argv);
int cli_model(int argc, char **argv);

/* In the agentnet executable. */
int cli_sandbox(int argc, char **argv);
/* agentnet sandbox run, reached through cli_sandbox. */
int cli_sandbox_run(int argc, char **argv);

/*
 * Opens libagentnet-commands.so and calls its entry point `symbol`
 * ("cli_serve") with argc and argv. Returns that command's exit status, or
 * 2 after printing why the module could not be loaded.
 */
int cli_run_module_command(const char *symbol, int argc, char **argv);

#endif
