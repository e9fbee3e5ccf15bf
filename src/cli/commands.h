/* Entry points of the subcommands; each returns the process exit status. */
#ifndef AGENTNET_CLI_COMMANDS_H
#define AGENTNET_CLI_COMMANDS_H

int cli_serve(int argc, char **argv);
int cli_cache(int argc, char **argv);
int cli_embed(int argc, char **argv);
int cli_model(int argc, char **argv);
int cli_sandbox(int argc, char **argv);
/* agentnet sandbox run, reached through cli_sandbox. */
int cli_sandbox_run(int argc, char **argv);

#endif
