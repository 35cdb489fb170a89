"""The browser dashboard's static files (index.html, app.js, style.css, icon.svg), served by the
hub at /dashboard as they are: no build step. A package only so that installs carry the files."""
