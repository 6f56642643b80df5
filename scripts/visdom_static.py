"""visdom's page files (JavaScript, CSS, fonts), from the npm registry, a copied folder or the CDNs.

    python -m scripts.visdom_static --check            # which files the page still lacks (exit 1 if any)
    python -m scripts.visdom_static --from_npm         # npm pack of the versions visdom 0.2.4 expects
    python -m scripts.visdom_static --from DIR         # a static/ folder copied from another machine
    python -m scripts.visdom_static --from_cdn         # visdom's own download from the CDNs

visdom's server ships its page (index.html, main.js) but not the libraries the page loads: jQuery, Bootstrap,
React, Plotly, d3 and a few more, which ``python -m visdom.server`` downloads from CDNs at every start and which a
cluster without internet never gets; the page then shows nothing. Every one of them is in the npm registry, which
offline clusters often mirror, so ``--from_npm`` takes them from there (``npm pack`` of the exact versions, each
file copied to where the page asks for it); ``--from DIR`` copies them from a folder (e.g. ``visdom/static`` of a
machine that has them); ``--from_cdn`` runs visdom's own download. ``scripts/visdom_server.sh`` calls this.
"""
import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

# (npm package@version, file in its tarball, where the page asks for it under visdom/static/)
NPM_FILES = [
    ('jquery@3.1.1', 'dist/jquery.min.js', 'js/jquery.min.js'),
    ('bootstrap@3.3.7', 'dist/js/bootstrap.min.js', 'js/bootstrap.min.js'),
    ('bootstrap@3.3.7', 'dist/css/bootstrap.min.css', 'css/bootstrap.min.css'),
    *[('bootstrap@3.3.7', f'dist/fonts/glyphicons-halflings-regular.{ext}',
       f'fonts/glyphicons-halflings-regular.{ext}') for ext in ('eot', 'woff2', 'woff', 'ttf', 'svg')],
    ('react@16.2.0', 'umd/react.production.min.js', 'js/react-react.min.js'),
    ('react-dom@16.2.0', 'umd/react-dom.production.min.js', 'js/react-dom.min.js'),
    ('react-modal@3.1.10', 'dist/react-modal.min.js', 'js/react-modal.min.js'),
    ('plotly.js-dist-min@2.11.1', 'plotly.min.js', 'js/plotly-plotly.min.js'),
    ('sjcl@1.0.7', 'sjcl.js', 'js/sjcl.js'),
    ('layout-bin-packer@1.4.0', 'dist/layout-bin-packer.js', 'js/layout_bin_packer.js'),
    ('d3@3.5.17', 'd3.min.js', 'js/d3.v3.min.js'),
    ('d3-selection-multi@1.0.1', 'build/d3-selection-multi.js', 'js/d3-selection-multi.v1.js'),
    ('save-svg-as-png@1.4.17', 'lib/saveSvgAsPng.js', 'js/saveSvgAsPng.js'),
    ('react-resizable@1.4.6', 'css/styles.css', 'css/react-resizable-styles.css'),
    ('react-grid-layout@0.16.3', 'css/styles.css', 'css/react-grid-layout-styles.css'),
    ('classnames@2.2.5', 'index.js', 'fonts/classnames'),
    # LaTeX in text panes only; the page asks for these two whatever it shows
    ('mathjax@2.7.5', 'MathJax.js', 'js/mathjax/2.7.5/MathJax.js'),
    ('mathjax@2.7.5', 'config/TeX-AMS-MML_HTMLorMML.js', 'js/mathjax/2.7.5/config/TeX-AMS-MML_HTMLorMML.js'),
]
USER_STYLE = os.path.join('..', 'user', 'style.css')   # the page links it; visdom ships none


def static_dir():
    """visdom's static/ folder in this Python's site-packages (found without importing visdom, which imports torch:
    2.5 s at every server start)."""
    spec = importlib.util.find_spec('visdom')
    if spec is None or not spec.origin:
        raise SystemExit('error: visdom is not installed in this Python (pip install -r requirements.txt)')
    return os.path.join(os.path.dirname(spec.origin), 'static')


def missing(static=None):
    """The files (paths under static/) the page asks for that are not there."""
    static = static or static_dir()
    wanted = sorted({dest for _, _, dest in NPM_FILES}) + [USER_STYLE]
    return [dest for dest in wanted if not os.path.isfile(os.path.normpath(os.path.join(static, dest)))]


def _put(data, static, dest):
    path = os.path.normpath(os.path.join(static, dest))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as handle:
        handle.write(data)


def ensure_user_style(static=None):
    """An empty ``user/style.css`` beside static/ (the page's user stylesheet) when there is none."""
    static = static or static_dir()
    path = os.path.normpath(os.path.join(static, USER_STYLE))
    if not os.path.isfile(path):
        _put(b'/* your own styles for the visdom page */\n', static, USER_STYLE)


def from_npm(static=None, npm='npm'):
    """Fetch the packages with ``npm pack`` and copy each file to its place; returns the files written."""
    static = static or static_dir()
    if shutil.which(npm) is None:
        raise RuntimeError('npm is not installed (apt-get install npm, or use --from DIR or --from_cdn)')
    written = []
    with tempfile.TemporaryDirectory() as work:
        for package in sorted({package for package, _, _ in NPM_FILES}):
            done = subprocess.run([npm, 'pack', package, '--silent', '--pack-destination', work],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f'npm pack {package} failed: {done.stderr.strip()[-500:]}')
            tarball = os.path.join(work, done.stdout.strip().splitlines()[-1])
            with tarfile.open(tarball) as archive:
                for _, member, dest in (f for f in NPM_FILES if f[0] == package):
                    handle = archive.extractfile(f'package/{member}')
                    if handle is None:
                        raise RuntimeError(f'{package}: no {member} in its tarball')
                    _put(handle.read(), static, dest)
                    written.append(dest)
    ensure_user_style(static)
    return written


def from_folder(source, static=None):
    """Copy the page's files from ``source`` (a static/ folder with the same layout); returns the files copied."""
    static = static or static_dir()
    if not os.path.isdir(source):
        raise RuntimeError(f'--from {source} is not a folder')
    written = []
    for dest in sorted({dest for _, _, dest in NPM_FILES}):
        path = os.path.join(source, dest)
        if os.path.isfile(path):
            with open(path, 'rb') as handle:
                _put(handle.read(), static, dest)
            written.append(dest)
    ensure_user_style(static)
    return written


def from_cdn(static=None):
    """visdom's own download from the CDNs (needs internet), then the one file it puts where the page does not
    look."""
    static = static or static_dir()
    from visdom.server.build import download_scripts
    download_scripts(install_dir=os.path.dirname(static))
    ensure_user_style(static)


def report(static=None):
    """Print what is missing and how to get it; returns the missing list."""
    lacking = missing(static)
    if lacking:
        print(f'visdom page: {len(lacking)} file(s) missing under {static or static_dir()}: '
              f'{", ".join(lacking[:6])}{" ..." if len(lacking) > 6 else ""}\n'
              f'  get them with one of: bash scripts/visdom_server.sh --from_npm (npm registry or its mirror), '
              f'--static_from DIR (a copied visdom/static), --fetch_js (the CDNs)', file=sys.stderr)
    return lacking


def main(argv=None):
    """Fetch or check the page files; 0 when the page has everything, 1 when files are missing, 2 on failure."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--check', action='store_true', help='only list what is missing')
    group.add_argument('--from_npm', action='store_true', help='npm pack of the expected versions')
    group.add_argument('--from', dest='source', default='', help='copy from this static/ folder')
    group.add_argument('--from_cdn', action='store_true', help="visdom's own download (needs internet)")
    parser.add_argument('--static', default='', help='the static/ folder to fill (default: visdom\'s own)')
    args = parser.parse_args(argv)
    static = args.static or None
    try:
        if args.from_npm:
            print(f'copied {len(from_npm(static))} file(s) from the npm registry')
        elif args.source:
            print(f'copied {len(from_folder(args.source, static))} file(s) from {args.source}')
        elif args.from_cdn:
            from_cdn(static)
    except (RuntimeError, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    return 1 if report(static) else 0


if __name__ == '__main__':
    sys.exit(main())
