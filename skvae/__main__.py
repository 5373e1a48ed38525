"""Command line: `skvae demo` (also `python -m skvae demo`)."""

import argparse
import sys


def main(argv=None):
    """Entry point of the ``skvae`` console script."""
    parser = argparse.ArgumentParser(
        prog="skvae",
        description="skvae: scikit-learn VAEs that certify they did not collapse.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="conventional VAE vs SphericalClusterVAE on digits, at a collapse setting",
    )
    demo.add_argument(
        "--output", default="skvae_demo_latent.png",
        help="where to write the latent-space PNG (default: %(default)s)",
    )
    demo.add_argument("--random-state", type=int, default=0, help="seed (default: 0)")
    demo.add_argument(
        "--max-iter", type=int, default=200, help="maximum epochs per model (default: 200)"
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(output=args.output, random_state=args.random_state, max_iter=args.max_iter)
    return 0


if __name__ == "__main__":
    sys.exit(main())
