package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/marketplace/usersvc/adapters/buildinfo"
	"github.com/marketplace/usersvc/adapters/eventbus"
)

// Commands are the sub-commands' implementations, supplied by the
// composition root so that this package stays free of wiring.
type Commands struct {
	Serve   func(ctx context.Context, cfg Config) error
	Migrate func(ctx context.Context, cfg Config) error
	// MigrateStatus prints the applied and pending migrations.
	MigrateStatus func(ctx context.Context, cfg Config, out io.Writer) error
	Tail          func(ctx context.Context, cfg Config, fromBeginning bool, out io.Writer) error
}

// ErrUsage marks a command-line mistake (exit status 2).
var ErrUsage = errors.New("usage error")

// Run parses args (without the program name), loads the configuration and
// runs the chosen command. It returns the process exit status.
func Run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer, cmds Commands) int {
	err := run(ctx, args, lookup, stdout, cmds)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(stderr, "usersvc: %v\nRun 'usersvc --help' for usage.\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "usersvc: %v\n", err)
		return 1
	}
}

func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout io.Writer, cmds Commands) error {
	if len(args) == 0 {
		args = []string{"serve"}
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		Usage(stdout)
		return flag.ErrHelp
	case "-version", "--version":
		if len(args) > 1 {
			return fmt.Errorf("%w: %s takes no arguments", ErrUsage, args[0])
		}
		fmt.Fprintln(stdout, buildinfo.Read())
		return nil
	case "version", "serve":
		if err := noArguments(stdout, args[:1], args[1:]); err != nil {
			return err
		}
		if args[0] == "version" {
			fmt.Fprintln(stdout, buildinfo.Read())
			return nil
		}
		cfg, err := Load(lookup)
		if err != nil {
			return err
		}
		return cmds.Serve(ctx, cfg)
	case "migrate":
		command, rest := args[:1], args[1:]
		if len(rest) > 0 && rest[0] == "status" {
			command, rest = args[:2], args[2:]
		}
		if err := noArguments(stdout, command, rest); err != nil {
			return err
		}
		cfg, err := Load(lookup)
		if err != nil {
			return err
		}
		if len(command) == 2 {
			return cmds.MigrateStatus(ctx, cfg, stdout)
		}
		return cmds.Migrate(ctx, cfg)
	case "events":
		if len(args) == 2 && isHelp(args[1]) {
			commandUsage(stdout, "events tail")
			return flag.ErrHelp
		}
		if len(args) < 2 || args[1] != "tail" {
			return fmt.Errorf("%w: the events command has one sub-command: events tail [--from-beginning]", ErrUsage)
		}
		fs := flag.NewFlagSet("events tail", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fromBeginning := fs.Bool("from-beginning", false, "read the topic from its first event")
		if err := fs.Parse(args[2:]); errors.Is(err, flag.ErrHelp) {
			commandUsage(stdout, "events tail")
			return flag.ErrHelp
		} else if err != nil || fs.NArg() > 0 {
			return fmt.Errorf("%w: events tail [--from-beginning]", ErrUsage)
		}
		cfg, err := Load(lookup)
		if err != nil {
			return err
		}
		if bus, _ := BusConfig(cfg).Selected(); bus == eventbus.BusLog {
			return errors.New("events tail needs a broker: EVENT_BUS=kafka with KAFKA_BROKERS, or EVENT_BUS=rabbitmq")
		}
		return cmds.Tail(ctx, cfg, *fromBeginning, stdout)
	default:
		return fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
	}
}

func isHelp(arg string) bool {
	switch arg {
	case "-h", "--help", "-help", "help":
		return true
	}
	return false
}

// noArguments accepts a command without arguments; with only a help flag
// it prints the command's usage and returns flag.ErrHelp (exit 0).
func noArguments(stdout io.Writer, command, rest []string) error {
	name := strings.Join(command, " ")
	switch {
	case len(rest) == 0:
		return nil
	case len(rest) == 1 && isHelp(rest[0]):
		commandUsage(stdout, name)
		return flag.ErrHelp
	default:
		return fmt.Errorf("%w: %s takes no arguments", ErrUsage, name)
	}
}

// commands is the usage line and summary of every command, in help order.
var commands = []struct{ name, usage, summary string }{
	{"serve", "usersvc [serve]", "run the HTTP API and the event relay (default)"},
	{"migrate", "usersvc migrate", "apply the database migrations and exit"},
	{"migrate status", "usersvc migrate status", "list the applied and pending migrations and exit"},
	{"events tail", "usersvc events tail [--from-beginning]", "print the bus's events as JSON lines"},
	{"version", "usersvc version", "print the version, VCS revision and Go version (also --version)"},
	{"help", "usersvc --help", "show this help (CMD --help: one command's)"},
}

// commandUsage prints one command's usage (for `usersvc CMD --help`).
func commandUsage(w io.Writer, name string) {
	for _, c := range commands {
		if c.name == name {
			fmt.Fprintf(w, "Usage: %s\n  %s\n", c.usage, c.summary)
		}
	}
	fmt.Fprintln(w, "\nThe configuration comes from environment variables: see usersvc --help.")
}

// Usage prints the commands and every environment variable with its default.
func Usage(w io.Writer) {
	fmt.Fprint(w, `usersvc: the marketplace's users service.

Usage:
`)
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.usage, c.summary)
	}
	tw.Flush()
	fmt.Fprint(w, `
Configuration (environment variables):
`)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tDEFAULT\tDESCRIPTION")
	for _, v := range Variables {
		def := v.Default
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Name, def, v.Help)
	}
	tw.Flush()
	fmt.Fprintln(w, strings.TrimSpace(`
A bad value stops the service at start-up with one line naming the variable.`))
}
