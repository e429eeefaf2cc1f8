"""The studio's static files (index.html, studio.js, studio.css), served at `/` by
`reelforge.api.pages`: a page that talks to this server's own AI/ML API routes."""
