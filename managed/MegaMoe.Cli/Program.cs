using MegaMoe.Cli;

// megamoe: the command-line face of MegaMoe (docs/CLI.md). Everything happens in CliApplication, which the tests call
// in-process with their own writers.
return CliApplication.Run(args, CliConsole.FromProcess());
