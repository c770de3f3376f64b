"""One module per `bootpig` subcommand, each with `register(subparsers)`."""
