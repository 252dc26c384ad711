package main

import (
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/web"
)

// demoTokenTTL is how long a demo token lasts. Short on purpose: the demo
// page then shows its client fetching a fresh token and resuming, every
// couple of minutes, with nothing lost.
const demoTokenTTL = 2 * time.Minute

// demoPublish is what a demo token may publish to: project 1's channels (the
// demo's ticket feed) and any user's notifications (its "notify" buttons).
var demoPublish = []string{"project_1_*", "user_*_notifications"}

// registerWeb serves the browser client and the demo page on e; in dev mode
// the demo page may also mint tokens for its users, signed with secret, for
// this machine's clients only unless remote.
func registerWeb(e *echo.Echo, dev, remote bool, secret []byte, logger *slog.Logger) {
	opt := web.Options{DemoTokensFromAnywhere: remote}
	if dev {
		who := "clients on this machine"
		if remote {
			who = "any client (RELAY_DEV_REMOTE=true)"
		}
		logger.Warn("relay.config_warning", "setting", "RELAY_DEV", "hint", "dev mode: POST /api/dev/token mints tokens for the demo users (alice, bob, carol) for "+who+"; never enable RELAY_DEV where relay verifies real tokens")
		opt.MintDemoToken = func(name string) (string, error) {
			u, _ := web.LookupDemoUser(name)
			tok, err := auth.Mint(secret, auth.Identity{UserID: u.ID, Name: u.Name, Projects: u.Projects, Publish: demoPublish}, demoTokenTTL)
			if err != nil {
				logger.Error("relay.dev_token_error", "user", name, "err", err)
			}
			return tok, err
		}
	}
	web.Register(e, opt)
}
