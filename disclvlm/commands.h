/* The disclvlm command-line tool: one file per subcommand. Each returns the
 * process exit code; errors go to stderr as one line. */
#ifndef DISCLVLM_COMMANDS_H
#define DISCLVLM_COMMANDS_H

int cmd_info(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);   /* also cmd_detokenize, cmd_tokenize.c */
int cmd_detokenize(int argc, char **argv);

/* Prints "disclvlm: <context>: <last error>" to stderr; returns 1. */
int cli_fail(const char *context);

#endif
