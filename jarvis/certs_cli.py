"""`jarvis certs`: the project CA and the leaves it issues, for deployments beyond `jarvis stack up`
(which issues the brokers' and the HTTP servers' leaves itself)."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from jarvis.config import settings
from jarvis.security.certs import CertificateAuthority

certs_app = typer.Typer(no_args_is_help=True, help="The project CA and its certificates (TLS for Kafka and HTTPS).")
console = Console(stderr=True)


@certs_app.command("ca")
def ca() -> None:
    """Make the CA under JARVIS_HOME/tls if missing; print the path clients should trust."""
    typer.echo(CertificateAuthority(settings().tls_dir).ensure())


@certs_app.command("issue")
def issue(
    name: str = typer.Argument(..., help="File name of the leaf: NAME.pem, NAME.key, NAME.p12"),
    host: list[str] = typer.Option(..., "--host", help="A DNS name or IP address the certificate is for (repeat)."),
    as_json: bool = typer.Option(False, "--json", help="Print the paths as JSON."),
) -> None:
    """Issue (or keep, if current and for the same hosts) an ECDSA P-256 leaf signed by the CA."""
    if not name.replace("-", "").replace("_", "").isalnum():
        raise typer.BadParameter("letters, digits, - and _ only", param_hint="NAME")
    leaf = CertificateAuthority(settings().tls_dir).leaf(name, hosts=tuple(host))
    paths = {"cert": str(leaf.cert), "key": str(leaf.key), "p12": str(leaf.p12), "ca": str(settings().tls_dir / "ca.pem")}
    if as_json:
        typer.echo(json.dumps(paths))
    else:
        for k, v in paths.items():
            console.print(f"{k:5} {v}")
