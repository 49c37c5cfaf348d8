package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/marketplace/usersvc/adapters/eventbus"
)

// Commands are the sub-commands' implementations, supplied by the
// composition root so that this package stays free of wiring.
type Commands struct {
	Serve   func(ctx context.Context, cfg Config) error
	Migrate func(ctx context.Context, cfg Config) error
	Tail    func(ctx context.Context, cfg Config, fromBeginning bool, out io.Writer) error
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
	case "serve", "migrate":
		if len(args) > 1 {
			return fmt.Errorf("%w: %s takes no arguments", ErrUsage, args[0])
		}
		cfg, err := Load(lookup)
		if err != nil {
			return err
		}
		if args[0] == "serve" {
			return cmds.Serve(ctx, cfg)
		}
		return cmds.Migrate(ctx, cfg)
	case "events":
		if len(args) < 2 || args[1] != "tail" {
			return fmt.Errorf("%w: the events command has one sub-command: events tail [--from-beginning]", ErrUsage)
		}
		fs := flag.NewFlagSet("events tail", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fromBeginning := fs.Bool("from-beginning", false, "read the topic from its first event")
		if err := fs.Parse(args[2:]); err != nil || fs.NArg() > 0 {
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

// Usage prints the commands and every environment variable with its default.
func Usage(w io.Writer) {
	fmt.Fprint(w, `usersvc: the marketplace's users service.

Usage:
  usersvc [serve]                       run the HTTP API and the event relay (default)
  usersvc migrate                       apply the database migrations and exit
  usersvc events tail [--from-beginning] print the bus's events as JSON lines
  usersvc --help                        show this help

Configuration (environment variables):
`)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
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
