/*
 * The agentnet command: dispatches to its subcommands. The sandbox commands
 * are in this executable; the others are in libagentnet-commands.so
 * (command_module.c).
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "agentnet/common.h"
#include "cli/commands.h"

/* Commands in libagentnet-commands.so, with the entry point that runs each. */
static const struct {
    const char *name;
    const char *symbol;
} module_commands[] = {
    {"serve", "cli_serve"},
    {"cache", "cli_cache"},
    {"embed", "cli_embed"},
    {"model", "cli_model"},
};

static void print_usage(FILE *out)
{
    fprintf(out,
            "Usage: agentnet COMMAND [OPTIONS]\n\n"
            "Commands:\n"
            "  serve          run the OpenAI-compatible caching gateway\n"
            "  cache stats    print cache statistics of a data directory\n"
            "  cache purge    remove cached entries from a data directory\n"
            "  embed          embed text lines with a local model (default hash:384)\n"
            "  model pull     download a model from the Hugging Face hub\n"
            "  sandbox        print security levels, check plugin manifests against a policy\n\n"
            "Options:\n"
            "  --version      print the version\n"
            "  -h, --help     show this help; COMMAND --help shows a command's options\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    const char *command = argv[1];
    if (strcmp(command, "--version") == 0 || strcmp(command, "version") == 0) {
        printf("agentnet %s\n", AN_VERSION);
        return 0;
    }
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 ||
        strcmp(command, "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(command, "sandbox") == 0)
        return cli_sandbox(argc - 2, argv + 2);
    for (size_t i = 0; i < sizeof(module_commands) / sizeof(module_commands[0]); i++)
        if (strcmp(command, module_commands[i].name) == 0)
            return cli_run_module_command(module_commands[i].symbol, argc - 2, argv + 2);

    fprintf(stderr, "agentnet: unknown command \"%s\"; run agentnet --help\n", command);
    return 2;
}
