package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestTokenFromRequest(t *testing.T) {
	tests := []struct {
		name   string
		url    string
		header string // Authorization
		cookie string // relay_token
		want   string
	}{
		{name: "none", url: "/events", want: ""},
		{name: "header", url: "/events", header: "Bearer h.h.h", want: "h.h.h"},
		{name: "header scheme case", url: "/events", header: "bearer  h.h.h ", want: "h.h.h"},
		{name: "query", url: "/events?token=q.q.q", want: "q.q.q"},
		{name: "cookie", url: "/events", cookie: "c.c.c", want: "c.c.c"},
		{name: "header beats query and cookie", url: "/events?token=q.q.q", header: "Bearer h.h.h", cookie: "c.c.c", want: "h.h.h"},
		{name: "query beats cookie", url: "/events?token=q.q.q", cookie: "c.c.c", want: "q.q.q"},
		{name: "basic header ignored", url: "/events?token=q.q.q", header: "Basic dXNlcjpwYXNz", want: "q.q.q"},
		{name: "empty bearer falls through", url: "/events", header: "Bearer ", cookie: "c.c.c", want: "c.c.c"},
		{name: "empty query falls through", url: "/events?token=", cookie: "c.c.c", want: "c.c.c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.url, nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			if tt.cookie != "" {
				r.AddCookie(&http.Cookie{Name: CookieName, Value: tt.cookie})
			}
			if got := TokenFromRequest(r); got != tt.want {
				t.Errorf("TokenFromRequest: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestContext(t *testing.T) {
	ctx := context.Background()
	if id, ok := FromContext(ctx); ok || id != nil {
		t.Errorf("FromContext(empty): got %v, %v, want nil, false", id, ok)
	}
	if _, ok := FromContext(WithIdentity(ctx, nil)); ok {
		t.Errorf("FromContext(nil identity): got ok, want false")
	}
	want := &Identity{UserID: "42"}
	if got, ok := FromContext(WithIdentity(ctx, want)); !ok || got != want {
		t.Errorf("FromContext: got %v, %v, want %v, true", got, ok, want)
	}
}
