# Builds the relay binary for fly.toml (or any container platform).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The version relay reports (relay version, the startup line, /healthz):
#   fly deploy --build-arg VERSION=$(git describe --tags --always --dirty)
# Unset, relay reports what the Go toolchain recorded ("devel" without .git).
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /relay ./app

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /relay /relay
EXPOSE 8080
ENTRYPOINT ["/relay"]
