"""`bootpig subjects create|list|show|delete`: upload an object's photos once, reuse them for many jobs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bootpig.commands.remote import add_server_flags, client_from, report_errors
from model.config import Segmenter


def register(subparsers) -> None:
    p = subparsers.add_parser("subjects", help="manage prepared subjects on a running service")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="upload 1-8 photos of one object; prints the subject id")
    add_server_flags(create)
    create.add_argument("--ref", action="append", required=True, help="reference photo (repeat, 1-8)")
    create.add_argument("--name", default=None, help="a label to recognise the subject by")
    create.add_argument(
        "--segment", choices=[m.value for m in Segmenter], default=None, help="default: the server's"
    )
    create.add_argument("--no-wait", action="store_true", help="do not wait until the worker prepared it")
    create.add_argument(
        "--references-out",
        default=None,
        help="folder to save the prepared references (PNG) in, to check them",
    )
    create.add_argument("--timeout", type=float, default=None, help="seconds to wait (default: no limit)")
    create.set_defaults(func=create_subject)

    listing = actions.add_parser("list", help="the caller's subjects (JSON lines)")
    add_server_flags(listing)
    listing.set_defaults(func=list_subjects)

    show = actions.add_parser("show", help="one subject as JSON")
    add_server_flags(show)
    show.add_argument("id")
    show.set_defaults(func=show_subject)

    delete = actions.add_parser("delete", help="delete a subject and its prepared references")
    add_server_flags(delete)
    delete.add_argument("id")
    delete.set_defaults(func=delete_subject)


@report_errors
def create_subject(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        subject = client.create_subject(args.ref, name=args.name, segment=args.segment)
        if not args.no_wait:
            subject = client.wait_subject(subject["id"], timeout=args.timeout)
            print(f"subject {subject['id']} ready ({len(subject['references'])} references)", file=sys.stderr)
            if args.references_out:
                out = Path(args.references_out).expanduser()
                out.mkdir(parents=True, exist_ok=True)
                for n in range(len(subject["references"])):
                    (out / f"{subject['id']}-ref-{n}.png").write_bytes(client.reference(subject["id"], n))
    print(subject["id"])
    return 0


@report_errors
def list_subjects(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        for subject in client.subjects():
            print(json.dumps(subject))
    return 0


@report_errors
def show_subject(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        print(json.dumps(client.subject(args.id), indent=2))
    return 0


@report_errors
def delete_subject(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        client.delete_subject(args.id)
    print(f"subject {args.id} deleted", file=sys.stderr)
    return 0
