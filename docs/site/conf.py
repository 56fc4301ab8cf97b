# -*- coding: utf-8 -*-
# Copyright: cutover.web contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Sphinx settings of the cutover.web docs site, built by `./dev test docs` (docs/site/build.sh): the
# module and role pages antsibull-docs makes from the collection, and the guides (README.md, docs/*.md)
# as Markdown. Built offline with every warning an error, so a broken reference fails the build.

project = 'cutover.web'
copyright = 'cutover.web contributors'
title = 'cutover.web'
html_short_title = 'cutover.web'

extensions = ['sphinx.ext.autodoc', 'sphinx_antsibull_ext', 'myst_parser']
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
# GitHub-style heading anchors, so the guides' own [links](#section) resolve.
myst_heading_anchors = 4

pygments_style = 'ansible'
highlight_language = 'YAML+Jinja'
html_theme = 'sphinx_ansible_theme'
html_show_sphinx = False
display_version = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False

# No intersphinx: the build runs without network. References into Ansible's own documentation go
# to ansible_docs.rst, which links there.
default_role = 'any'
nitpicky = True
