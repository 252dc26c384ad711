// Command relay relays events published by a backend to browsers over
// Server-Sent Events and WebSocket, with exact replay by Last-Event-ID.
//
//	relay [serve] [flags]   serve (the default); relay -h lists the settings
//	relay version           print the version (also relay -version)
//	relay token  [flags]    print a signed dev token
//	relay publish [flags]   publish one event to a running relay
//	relay bench  [flags]    measure relay, both stores (see README)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}

// run is the whole program: tests start it on :0 as main does.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd, rest := "serve", args[1:]
	if len(rest) > 0 && len(rest[0]) > 0 && rest[0][0] != '-' {
		cmd, rest = rest[0], rest[1:]
	}
	var err error
	switch cmd {
	case "serve":
		if answered := serveInfo(rest, stdout); answered {
			return nil
		}
		err = serve(ctx, rest, getenv, stdout, stderr)
	case "version":
		if len(rest) > 0 {
			return fmt.Errorf("version takes no arguments, got %q", rest[0])
		}
		printVersion(stdout)
	case "help":
		serveInfo([]string{"-h"}, stdout)
	case "token":
		err = tokenCmd(rest, getenv, stdout, stderr)
	case "publish":
		err = publishCmd(ctx, rest, getenv, stdout, stderr)
	case "bench":
		err = benchCmd(ctx, rest, getenv, stdout, stderr)
	default:
		return fmt.Errorf("unknown command %q: use serve, version, token, publish or bench (relay -h says more)", cmd)
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h was asked for, and the usage printed
	}
	return err
}
