package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/junction-gw/junction/cmd/junction/internal/importer"
)

// importConfig runs `junction import [flags] KIND FILE...`: the YAML goes
// to stdout, unmapped directives, hints and the front-server snippet to
// stderr. Exit 0 with a config, 1 when the input cannot be read or nothing
// maps, 2 for an unknown KIND or bad usage.
func importConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opt importer.Options
	fs.StringVar(&opt.User, "user", "", "the `NAME` scripts ran as, where the input does not say (fcgiwrap)")
	fs.StringVar(&opt.Listen, "listen", importer.DefaultListen, "`ADDR` of the SCGI listener junction gets where the old setup had no gateway socket it can take over")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintf(stderr, "junction import: KIND is required (%s)\n%s", strings.Join(importer.Kinds, ", "), usage)
		return 2
	}
	kind := rest[0]
	// Flags may follow KIND too: junction import nginx --user www-data FILE.
	if err := fs.Parse(rest[1:]); err != nil {
		return 2
	}
	files := fs.Args()
	if len(files) == 0 {
		fmt.Fprintf(stderr, "junction import: at least one FILE is required\n%s", usage)
		return 2
	}
	res, err := importer.Import(kind, files, opt)
	switch {
	case errors.Is(err, importer.ErrUnknownKind):
		fmt.Fprintf(stderr, "junction import: %v\n%s", err, usage)
		return 2
	case errors.Is(err, importer.ErrNothingMapped):
		fmt.Fprint(stderr, res.Report())
		fmt.Fprintf(stderr, "junction import: nothing in %s could be mapped (the lines above say why)\n", strings.Join(files, " "))
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "junction import: %v\n", err)
		return 1
	}
	header := fmt.Sprintf("junction configuration imported from %s (%s) by junction import.\nCheck it with: junction check -c FILE", strings.Join(files, " "), kind)
	fmt.Fprint(stdout, res.YAML(header))
	fmt.Fprint(stderr, res.Report())
	return 0
}

// runImport is importConfig on the process's standard streams.
func runImport(args []string) int { return importConfig(args, os.Stdout, os.Stderr) }
