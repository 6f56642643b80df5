"""A small HTML page builder on dominate: a title, headers, paragraphs, tables and rows of captioned images.

    page = HTML(web_dir, 'run name')
    page.add_header('epoch 3')
    page.add_images(['images/a.png', 'images/b.png'], ['real, d=12.3', 'fake, d=40.1'], width=128)
    page.save()                       # writes <web_dir>/index.html

Image paths are relative to ``web_dir``; ``self.img_dir`` (``<web_dir>/images``) is the usual place for them.
"""
import os

import dominate
from dominate.tags import a, br, h3, img, meta, p, table, td, th, tr

from util import util


class HTML:
    """A page saved as ``<web_dir>/<filename>``; ``refresh`` > 0 makes the browser reload it every so many seconds."""

    def __init__(self, web_dir, title, refresh=0, filename='index.html'):
        self.title = title
        self.web_dir = web_dir
        self.filename = filename
        self.img_dir = os.path.join(self.web_dir, 'images')  # created by whoever puts images there
        util.mkdirs(self.web_dir)
        self.doc = dominate.document(title=title)
        if refresh > 0:
            with self.doc.head:
                meta(http_equiv='refresh', content=str(refresh))

    def add_header(self, text):
        """Add ``text`` as a level-3 header."""
        with self.doc:
            h3(text)

    def add_text(self, text):
        """Add ``text`` as a paragraph."""
        with self.doc:
            p(text)

    def add_link(self, text, href):
        """Add a paragraph with a link to ``href`` that reads ``text``."""
        with self.doc:
            p(a(text, href=href))

    def add_table(self, header, rows):
        """A table with a header row and rows of cells (strings or numbers)."""
        t = table(border=1, style='border-collapse: collapse; margin-bottom: 1em')
        self.doc.add(t)
        with t:
            with tr():
                for cell in header:
                    th(str(cell), style='padding: 3px 8px')
            for row in rows:
                with tr():
                    for cell in row:
                        td(str(cell), style='padding: 3px 8px')

    def add_images(self, ims, txts, links=None, width=256):
        """One row of images (paths relative to web_dir), each captioned and linked (to itself by default)."""
        links = links or ims
        t = table(border=0, style='table-layout: fixed;')
        self.doc.add(t)
        with t:
            with tr():
                for im, txt, link in zip(ims, txts, links):
                    with td(style='word-wrap: break-word;', halign='center', valign='top'):
                        with p():
                            with a(href=link):
                                img(style=f'width:{width}px', src=im)
                            br()
                            p(txt)

    def render(self):
        """The page as an HTML string."""
        return self.doc.render()

    def save(self):
        """Write the page atomically."""
        util.atomic_write_text(os.path.join(self.web_dir, self.filename), self.render())
