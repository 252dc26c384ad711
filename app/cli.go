package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/relaydev/relay/auth"
)

// serveInfo answers relay -h (the usage) and relay -version on stdout, and
// reports whether it did; serve then has nothing to do. Other flag errors
// are left to serve, which reports them.
func serveInfo(args []string, stdout io.Writer) bool {
	fs, _, showVersion := serveFlags(io.Discard)
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return true
	case err == nil && *showVersion:
		printVersion(stdout)
		return true
	}
	return false
}

// tokenCmd prints a signed token: relay token --sub 1 --name alice --projects 1,2.
func tokenCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relay token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secret := fs.String("jwt-secret", getenv("RELAY_JWT_SECRET"), "HS256 key (env RELAY_JWT_SECRET)")
	sub := fs.String("sub", "", "user id (required)")
	name := fs.String("name", "", "display name")
	projects := fs.String("projects", "", "comma-separated project ids the user belongs to")
	subscribe := fs.String("subscribe", "", "comma-separated extra channel patterns the user may read")
	publish := fs.String("publish", "", "comma-separated channel patterns the holder may publish to ('*': all)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *sub == "" {
		return errors.New("token: --sub is required (the user id)")
	}
	if *secret == "" {
		return errors.New("token: set RELAY_JWT_SECRET (or --jwt-secret) to the secret the relay verifies with")
	}
	tok, err := auth.Mint([]byte(*secret), auth.Identity{
		UserID: *sub, Name: *name, Projects: splitList(*projects),
		Subscribe: splitList(*subscribe), Publish: splitList(*publish),
	}, *ttl)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// publishCmd publishes one event through a running relay's HTTP API.
func publishCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relay publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", envOr(getenv, "RELAY_URL", "http://localhost:8080"), "relay's base URL (env RELAY_URL)")
	token := fs.String("token", getenv("RELAY_TOKEN"), "token with a publish claim (env RELAY_TOKEN; default: one minted with RELAY_JWT_SECRET)")
	key := fs.String("key", getenv("RELAY_PUBLISH_KEY"), "publish key, one of the secrets of the relay's RELAY_PUBLISH_KEYS (env RELAY_PUBLISH_KEY)")
	secret := fs.String("jwt-secret", getenv("RELAY_JWT_SECRET"), "HS256 key to mint a publish token (env RELAY_JWT_SECRET)")
	channel := fs.String("channel", "", "channel to publish to (required)")
	typ := fs.String("type", "", "event type (required)")
	data := fs.String("data", "", "JSON value sent as the event's \"data\"")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *channel == "" || *typ == "" {
		return errors.New("publish: --channel and --type are required")
	}
	body := map[string]any{"channel": *channel, "type": *typ}
	if *data != "" {
		if !json.Valid([]byte(*data)) {
			return errors.New("publish: --data is not valid JSON (quote strings: --data '\"text\"')")
		}
		body["data"] = json.RawMessage(*data)
	}
	switch {
	case *token != "" && *key != "":
		return errors.New("publish: pass a token (--token, RELAY_TOKEN) or a publish key (--key, RELAY_PUBLISH_KEY), not both")
	case *key != "":
		*token = *key // sent the same way: Authorization: Bearer
	case *token == "":
		if *secret == "" {
			return errors.New("publish: pass --key (a publish key) or --token, or set RELAY_JWT_SECRET so a publish token can be minted")
		}
		t, err := auth.Mint([]byte(*secret), auth.Identity{UserID: "relay-cli", Publish: []string{*channel}}, time.Minute)
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		*token = t
	}
	raw, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(*url, "/")+"/api/publish", bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+*token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("publish: %w (is relay running at %s? set --url or RELAY_URL)", err, *url)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publish: relay answered %s: %s", resp.Status, bytes.TrimSpace(answer))
	}
	fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(answer))
	return nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
