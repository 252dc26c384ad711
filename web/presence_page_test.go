package web_test

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/relaydev/relay/events"
)

// TestPresencePageInStep: relay.js asks for pages of presence as large as
// relay answers (events.MaxPresencePage); a larger ask would be refused 400.
func TestPresencePageInStep(t *testing.T) {
	src, err := os.ReadFile("relay-stores.js")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`export const PRESENCE_PAGE = (\d+);`).FindSubmatch(src)
	if m == nil {
		t.Fatal("relay-stores.js: no `export const PRESENCE_PAGE = <n>;`")
	}
	if n, _ := strconv.Atoi(string(m[1])); n != events.MaxPresencePage {
		t.Errorf("relay-stores.js PRESENCE_PAGE is %d; want events.MaxPresencePage, %d", n, events.MaxPresencePage)
	}
}
